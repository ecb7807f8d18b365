//! Positional field access on tuples, for Flink's `sum(field)` on keyed streams.

/// A value that can appear in a tuple field; numeric ones can be summed.
pub trait Field {
    /// True for numeric types.
    const NUMERIC: bool;
    /// Adds `other` to `self` (numeric types only; others leave `self` unchanged).
    fn add_assign(&mut self, other: &Self);
}

macro_rules! numeric {
    ($($t:ty),*) => {$(
        impl Field for $t {
            const NUMERIC: bool = true;
            #[inline]
            fn add_assign(&mut self, other: &Self) { *self += *other; }
        }
    )*};
}
numeric!(i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize, f32, f64);

macro_rules! non_numeric {
    ($($t:ty),*) => {$(
        impl Field for $t {
            const NUMERIC: bool = false;
            #[inline]
            fn add_assign(&mut self, _other: &Self) {}
        }
    )*};
}
non_numeric!(String, crate::api::data::Str, bool, char);

/// A record whose fields can be summed by position, like Flink's tuples.
///
/// ```
/// use floe::api::tuple::Fields;
/// let mut acc = ("spark".to_string(), 1i64);
/// acc.add_field(1, &("spark".to_string(), 1));
/// assert_eq!(acc.1, 2);
/// assert!(!<(String, i64)>::is_numeric(0));
/// ```
pub trait Fields {
    /// Number of fields.
    fn arity() -> usize;
    /// True when field `i` exists and is numeric.
    fn is_numeric(i: usize) -> bool;
    /// Adds field `i` of `other` to field `i` of `self`.
    fn add_field(&mut self, i: usize, other: &Self);
}

macro_rules! tuple_fields {
    ($n:expr; $($idx:tt $T:ident),*) => {
        impl<$($T: Field),*> Fields for ($($T,)*) {
            fn arity() -> usize { $n }
            fn is_numeric(i: usize) -> bool {
                match i { $($idx => $T::NUMERIC,)* _ => false }
            }
            #[inline]
            fn add_field(&mut self, i: usize, other: &Self) {
                match i { $($idx => self.$idx.add_assign(&other.$idx),)* _ => {} }
            }
        }
    };
}
tuple_fields!(1; 0 A);
tuple_fields!(2; 0 A, 1 B);
tuple_fields!(3; 0 A, 1 B, 2 C);
tuple_fields!(4; 0 A, 1 B, 2 C, 3 D);
tuple_fields!(5; 0 A, 1 B, 2 C, 3 D, 4 E);

macro_rules! scalar_fields {
    ($($t:ty),*) => {$(
        impl Fields for $t {
            fn arity() -> usize { 1 }
            fn is_numeric(i: usize) -> bool { i == 0 }
            #[inline]
            fn add_field(&mut self, i: usize, other: &Self) { if i == 0 { *self += *other; } }
        }
    )*};
}
scalar_fields!(i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize, f32, f64);
