//! The sink: the lake's layout (`layout`), the object store behind it (`store`), rows split
//! into `date=` partitions (`partition`), staged Parquet files per slice (`parquet`), and the
//! commit protocol that publishes a slice's files all together or not at all (`commit`).

pub mod commit;
pub mod layout;
pub mod parquet;
pub mod partition;
pub mod store;

pub use layout::HourSlice;
pub use store::Lake;
