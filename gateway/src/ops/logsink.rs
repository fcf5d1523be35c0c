//! Where `varco run` writes its logs. Each thread formats a line into a buffer of its own, then
//! appends it to one shared buffer under a short lock; a writer thread takes the whole shared
//! buffer every [`MAX_DELAY`] (sooner when it passes [`BATCH`] bytes) and writes it to standard
//! output in one call. Under load that is one write for hundreds of access-log lines, no
//! allocation and no thread wake-up per line; a request never waits for the output. If the
//! output is stuck and [`LIMIT`] bytes pile up, further lines are dropped, counted and reported.

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// Longest time a line stays buffered.
pub const MAX_DELAY: Duration = Duration::from_millis(50);
/// Buffered bytes that wake the writer at once.
pub const BATCH: usize = 64 * 1024;
/// Buffered bytes beyond which lines are dropped.
pub const LIMIT: usize = 16 * 1024 * 1024;

#[derive(Debug, Default)]
struct State {
    buf: Mutex<Vec<u8>>,
    wake: Condvar,
    stop: AtomicBool,
    dropped: AtomicU64,
}

/// The `MakeWriter` handed to the fmt layer.
#[derive(Clone, Debug)]
pub struct LogSink {
    state: Arc<State>,
}

/// Writes what is left and stops the writer thread when dropped.
#[derive(Debug)]
pub struct LogGuard {
    state: Arc<State>,
    thread: Option<JoinHandle<()>>,
}

/// Starts the writer thread on `out`.
pub fn start(out: Box<dyn Write + Send>) -> std::io::Result<(LogSink, LogGuard)> {
    let state = Arc::new(State::default());
    let s = state.clone();
    let thread = std::thread::Builder::new()
        .name("varco-log".into())
        .spawn(move || write_loop(&s, out))?;
    Ok((
        LogSink {
            state: state.clone(),
        },
        LogGuard {
            state,
            thread: Some(thread),
        },
    ))
}

fn write_loop(state: &State, mut out: Box<dyn Write + Send>) {
    let mut spare: Vec<u8> = Vec::with_capacity(BATCH);
    loop {
        let batch = {
            let Ok(mut buf) = state.buf.lock() else {
                return;
            };
            if buf.len() < BATCH && !state.stop.load(Ordering::Acquire) {
                buf = match state.wake.wait_timeout(buf, MAX_DELAY) {
                    Ok((b, _)) => b,
                    Err(_) => return,
                };
            }
            std::mem::replace(&mut *buf, std::mem::take(&mut spare))
        };
        if !batch.is_empty() {
            let _ = out.write_all(&batch);
            let _ = out.flush();
        }
        spare = batch;
        spare.clear();
        if state.stop.load(Ordering::Acquire) {
            if let Ok(mut buf) = state.buf.lock() {
                let _ = out.write_all(&buf);
                buf.clear();
            }
            let _ = out.flush();
            return;
        }
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Release);
        self.state.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let dropped = self.state.dropped.load(Ordering::Relaxed);
        if dropped > 0 {
            #[allow(clippy::print_stderr)] // the log itself is what failed
            {
                eprintln!(
                    "varco: {dropped} log lines were dropped because the output could not keep up"
                );
            }
        }
    }
}

thread_local! {
    static LINE: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(512));
    /// Whether a `Line` of this thread is using `LINE`.
    static LINE_BUSY: Cell<bool> = const { Cell::new(false) };
}

impl LogSink {
    fn append(&self, line: &[u8]) {
        let Ok(mut buf) = self.state.buf.lock() else {
            return;
        };
        if buf.len() + line.len() > LIMIT {
            self.state.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let was_below = buf.len() < BATCH;
        buf.extend_from_slice(line);
        if was_below && buf.len() >= BATCH {
            self.state.wake.notify_one();
        }
    }
}

/// One log line being formatted (into the thread's own buffer); appended when dropped.
#[derive(Debug)]
pub struct Line<'a> {
    sink: &'a LogSink,
    /// Used only if the thread's buffer is busy (a line formatted while formatting another).
    own: Vec<u8>,
    uses_local: bool,
}

impl Write for Line<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.uses_local {
            LINE.with(|l| l.borrow_mut().extend_from_slice(data));
        } else {
            self.own.extend_from_slice(data);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line<'_> {
    fn drop(&mut self) {
        if self.uses_local {
            LINE.with(|l| {
                let mut l = l.borrow_mut();
                if !l.is_empty() {
                    self.sink.append(&l);
                    l.clear();
                }
            });
            LINE_BUSY.with(|b| b.set(false));
        } else if !self.own.is_empty() {
            self.sink.append(&self.own);
        }
    }
}

impl<'a> MakeWriter<'a> for LogSink {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        // Take the thread's buffer only if no other line of this thread is using it.
        let uses_local = LINE_BUSY.with(|b| !b.replace(true));
        Line {
            sink: self,
            own: Vec::new(),
            uses_local,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Out(Arc<Mutex<Vec<u8>>>, Arc<AtomicU64>);

    impl Write for Out {
        fn write(&mut self, d: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(d);
            Ok(d.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.1.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
    }

    fn text(out: &Out) -> String {
        String::from_utf8(out.0.lock().expect("lock").clone()).expect("utf8")
    }

    #[test]
    fn lines_are_batched_and_written_within_the_delay_and_at_shutdown() {
        let out = Out::default();
        let (sink, guard) = start(Box::new(out.clone())).expect("start");
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let sink = sink.clone();
                std::thread::spawn(move || {
                    for i in 0..250 {
                        let mut w = sink.make_writer();
                        write!(w, "thread {t} ").expect("write");
                        writeln!(w, "line {i}").expect("write");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("join");
        }
        std::thread::sleep(MAX_DELAY * 4);
        let got = text(&out);
        assert_eq!(
            got.lines().count(),
            1000,
            "lines must be out within the delay"
        );
        assert!(
            got.lines()
                .all(|l| l.starts_with("thread ") && l.contains(" line ")),
            "lines must not interleave"
        );
        assert!(
            out.1.load(Ordering::Relaxed) < 50,
            "1000 lines should not need 1000 writes"
        );
        let mut w = sink.make_writer();
        writeln!(w, "last").expect("write");
        drop(w);
        drop(guard);
        assert!(
            text(&out).ends_with("last\n"),
            "the last line is written at shutdown"
        );
    }

    #[test]
    fn a_line_formatted_inside_another_keeps_both() {
        let out = Out::default();
        let (sink, guard) = start(Box::new(out.clone())).expect("start");
        let mut outer = sink.make_writer();
        write!(outer, "outer ").expect("write");
        {
            let mut inner = sink.make_writer();
            writeln!(inner, "inner").expect("write");
        }
        writeln!(outer, "done").expect("write");
        drop(outer);
        drop(guard);
        let got = text(&out);
        assert!(
            got.contains("inner\n") && got.contains("outer done\n"),
            "{got}"
        );
    }
}
