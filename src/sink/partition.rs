//! Rows into `date=` partitions: the UTC day of each row's own time column.

use arrow::array::{Array, AsArray, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::TimestampMicrosecondType;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

use crate::timefmt::micros_to_day;

/// Splits a batch by the UTC day of column `time_column`; rows without a time go to
/// `fallback_day`. Days come out in ascending order, rows in their original order.
pub fn split_by_day(
    batch: &RecordBatch,
    time_column: usize,
    fallback_day: i32,
) -> Result<Vec<(i32, RecordBatch)>, ArrowError> {
    let times = batch
        .column(time_column)
        .as_primitive_opt::<TimestampMicrosecondType>()
        .ok_or_else(|| ArrowError::SchemaError("partition column is not a timestamp".into()))?;
    let days: Vec<i32> = (0..times.len())
        .map(|i| {
            if times.is_null(i) {
                fallback_day
            } else {
                micros_to_day(times.value(i))
            }
        })
        .collect();
    let first = days.first().copied().unwrap_or(fallback_day);
    if days.iter().all(|d| *d == first) {
        return Ok(vec![(first, batch.clone())]);
    }
    let mut distinct: Vec<i32> = days.clone();
    distinct.sort_unstable();
    distinct.dedup();
    distinct
        .into_iter()
        .map(|day| {
            let indices: UInt32Array = days
                .iter()
                .enumerate()
                .filter(|(_, d)| **d == day)
                .map(|(i, _)| i as u32)
                .collect();
            take_record_batch(batch, &indices).map(|part| (day, part))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, TimestampMicrosecondArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    #[test]
    fn rows_go_to_their_own_day() {
        let day = 86_400_000_000i64;
        let schema = Arc::new(Schema::new(vec![
            Field::new("t", crate::schema::timestamp_type(), true),
            Field::new("n", DataType::Int64, false),
        ]));
        let times =
            TimestampMicrosecondArray::from(vec![Some(day - 1), Some(day), None, Some(day + 5)])
                .with_timezone("UTC");
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(times),
                Arc::new(Int64Array::from(vec![1, 2, 3, 4])),
            ],
        )
        .expect("batch");
        let parts = split_by_day(&batch, 0, 0).expect("split");
        let summary: Vec<(i32, usize)> = parts.iter().map(|(d, b)| (*d, b.num_rows())).collect();
        assert_eq!(summary, [(0, 2), (1, 2)]);
    }
}
