//! The functions a window applies to its contents.

/// An incremental aggregation (Flink's `AggregateFunction`): each window keeps one
/// accumulator, every element is added to it as it arrives, and a firing emits
/// `get_result` of it. `merge` combines the accumulators of merged (session) windows.
///
/// ```
/// use floe::api::window::AggregateFunction;
///
/// /// The average of the second field.
/// #[derive(Clone)]
/// struct Average;
/// impl AggregateFunction<(String, i64), (i64, i64), f64> for Average {
///     fn create_accumulator(&mut self) -> (i64, i64) { (0, 0) }
///     fn add(&mut self, value: (String, i64), acc: &mut (i64, i64)) { acc.0 += value.1; acc.1 += 1; }
///     fn get_result(&mut self, acc: &(i64, i64)) -> f64 { acc.0 as f64 / acc.1 as f64 }
///     fn merge(&mut self, a: (i64, i64), b: (i64, i64)) -> (i64, i64) { (a.0 + b.0, a.1 + b.1) }
/// }
/// let mut avg = Average;
/// let mut acc = avg.create_accumulator();
/// avg.add(("a".into(), 1), &mut acc);
/// avg.add(("a".into(), 4), &mut acc);
/// assert_eq!(avg.get_result(&acc), 2.5);
/// ```
pub trait AggregateFunction<T, ACC, R>: Clone + Send + Sync + 'static {
    /// A new, empty accumulator (one per key and window).
    fn create_accumulator(&mut self) -> ACC;
    /// Adds one element to the accumulator.
    fn add(&mut self, value: T, accumulator: &mut ACC);
    /// The result of the accumulator (called on every firing; the accumulator stays).
    fn get_result(&mut self, accumulator: &ACC) -> R;
    /// Combines two accumulators (when session windows merge).
    fn merge(&mut self, a: ACC, b: ACC) -> ACC;
}
