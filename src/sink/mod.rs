//! The sink: the lake's layout (`layout`), the object store behind it (`store`), rows split
//! into `date=` partitions (`partition`), staged Parquet files per slice (`parquet`), an hour
//! built and merged with what it had (`hour`), the commit protocol that publishes a slice's
//! files all together or not at all (`commit`), and the locks that keep runs sharing an
//! output from replacing each other's rows (`lock`). With `format = "delta"`, `delta` commits
//! each table's hour as one Delta transaction instead of the journal.

pub mod commit;
pub mod delta;
pub mod hour;
pub mod layout;
pub mod lock;
pub mod parquet;
pub mod partition;
pub mod store;

pub use store::Lake;
