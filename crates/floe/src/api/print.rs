//! Flink's `print()` format.

use crate::api::functions::TaskInfo;
use crate::connectors::{Sink, SinkWriter};
use crate::Result;
use std::io::Write;

/// Formats a record the way Flink's `print()` does: tuples as `(a,b)`, strings bare.
///
/// ```
/// use floe::prelude::PrintFormat;
/// let mut s = String::new();
/// ("spark".to_string(), 1i64).print_to(&mut s);
/// assert_eq!(s, "(spark,1)");
/// ```
pub trait PrintFormat {
    /// Appends the record's text to `out`.
    fn print_to(&self, out: &mut String);
}

macro_rules! print_display {
    ($($t:ty),*) => {$(
        impl PrintFormat for $t {
            #[inline]
            fn print_to(&self, out: &mut String) {
                use std::fmt::Write as _;
                let _ = write!(out, "{}", self);
            }
        }
    )*};
}
// Integers are on the hot path of every printing and file sink: formatted without `fmt`.
macro_rules! print_int {
    ($($t:ty),*) => {$(
        impl PrintFormat for $t {
            #[inline]
            fn print_to(&self, out: &mut String) {
                out.push_str(itoa::Buffer::new().format(*self));
            }
        }
    )*};
}
print_int!(i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize);

print_display!(f32, f64, bool, char);

macro_rules! print_str {
    ($($t:ty),*) => {$(
        impl PrintFormat for $t {
            #[inline]
            fn print_to(&self, out: &mut String) {
                out.push_str(self.as_ref());
            }
        }
    )*};
}
print_str!(String, str, crate::api::data::Str);

impl<T: PrintFormat + ?Sized> PrintFormat for &T {
    fn print_to(&self, out: &mut String) {
        (**self).print_to(out)
    }
}

impl<T: PrintFormat> PrintFormat for Option<T> {
    fn print_to(&self, out: &mut String) {
        match self {
            Some(v) => v.print_to(out),
            None => out.push_str("null"),
        }
    }
}

impl<T: PrintFormat> PrintFormat for Vec<T> {
    fn print_to(&self, out: &mut String) {
        out.push('[');
        for (i, v) in self.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            v.print_to(out);
        }
        out.push(']');
    }
}

macro_rules! print_tuple {
    ($($idx:tt $T:ident),*) => {
        impl<$($T: PrintFormat),*> PrintFormat for ($($T,)*) {
            fn print_to(&self, out: &mut String) {
                out.push('(');
                let mut _first = true;
                $(
                    if !_first { out.push(','); }
                    _first = false;
                    self.$idx.print_to(out);
                )*
                out.push(')');
            }
        }
    };
}
print_tuple!(0 A);
print_tuple!(0 A, 1 B);
print_tuple!(0 A, 1 B, 2 C);
print_tuple!(0 A, 1 B, 2 C, 3 D);
print_tuple!(0 A, 1 B, 2 C, 3 D, 4 E);

/// Flink's print sink: one line per record on standard output.
///
/// When standard output is closed (the reader of a pipe went away, as with `| head`), the
/// sink stops printing: it logs one warning and discards its records from then on, and the
/// job runs on. Flink's print sink behaves the same way (its `PrintStream` swallows write
/// errors); output is not what a job's correctness rests on, so a closed stdout is not a
/// task failure that would restart the job again and again.
pub(crate) struct PrintSink;

impl<T: PrintFormat + 'static> Sink<T> for PrintSink {
    fn name(&self) -> String {
        "Print to Std. Out".into()
    }
    fn create(&self, info: &TaskInfo) -> Result<Box<dyn SinkWriter<T>>> {
        let prefix = if info.parallelism > 1 {
            format!("{}> ", info.subtask_index + 1)
        } else {
            String::new()
        };
        Ok(Box::new(PrintWriter {
            prefix,
            line: String::new(),
            closed: false,
        }))
    }
}

struct PrintWriter {
    prefix: String,
    line: String,
    /// Standard output was found closed: records are discarded without formatting.
    closed: bool,
}

impl<T: PrintFormat> SinkWriter<T> for PrintWriter {
    fn write_batch(&mut self, batch: &mut Vec<T>) -> Result<()> {
        if self.closed {
            batch.clear();
            return Ok(());
        }
        self.line.clear();
        for r in batch.drain(..) {
            self.line.push_str(&self.prefix);
            r.print_to(&mut self.line);
            self.line.push('\n');
        }
        let mut out = std::io::stdout().lock();
        // A closed stdout (e.g. `| head`) is not a task failure: Flink's print keeps running.
        let written = out
            .write_all(self.line.as_bytes())
            .and_then(|_| out.flush());
        if let Err(e) = written {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                self.closed = true;
                tracing::warn!(
                    "Standard output is closed; the print sink discards its records from now on."
                );
            }
        }
        Ok(())
    }
}
