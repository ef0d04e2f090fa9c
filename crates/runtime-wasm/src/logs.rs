//! Guest stdout/stderr captured per invocation, bounded, split into lines at the end.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// The most bytes kept per stream per invocation; the rest is counted and dropped.
pub const CAPTURE_LIMIT: usize = 64 * 1024;

#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Buffer>>);

#[derive(Default)]
struct Buffer {
    bytes: Vec<u8>,
    dropped: usize,
}

impl Capture {
    fn append(&self, data: &[u8]) {
        let mut b = self.0.lock().expect("capture lock poisoned");
        let room = CAPTURE_LIMIT.saturating_sub(b.bytes.len());
        let take = room.min(data.len());
        b.bytes.extend_from_slice(&data[..take]);
        b.dropped += data.len() - take;
    }

    /// Take what was written so far as lines, leaving the capture empty for the next request.
    pub fn take_lines(&self) -> Vec<String> {
        let Buffer { bytes, dropped } = {
            let mut buffer = self.0.lock().expect("capture lock poisoned");
            if buffer.bytes.is_empty() && buffer.dropped == 0 {
                return Vec::new();
            }
            std::mem::take(&mut *buffer)
        };
        let text = String::from_utf8_lossy(&bytes);
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        if dropped > 0 {
            lines.push(format!("[{dropped} more bytes of output dropped: the limit is {CAPTURE_LIMIT} bytes per invocation]"));
        }
        lines
    }
}

impl IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Capture {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for Capture {
    async fn ready(&mut self) {}
}

impl OutputStream for Capture {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for Capture {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_and_bounded() {
        let c = Capture::default();
        c.append(b"one\ntwo\n");
        c.append(b"three");
        assert_eq!(c.take_lines(), ["one", "two", "three"]);
        assert!(c.take_lines().is_empty());
        c.append(&vec![b'x'; CAPTURE_LIMIT + 10]);
        let lines = c.take_lines();
        assert_eq!(lines.len(), 2);
        assert!(lines[1].contains("10 more bytes"));
    }
}
