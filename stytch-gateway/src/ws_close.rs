//! How the gateway ends a tunnelled WebSocket itself: with a close frame, so the browser
//! reads why (`1008 session revoked` when the session is revoked, `1001 gateway shutting
//! down` at shutdown) instead of `1006` (connection lost).
//!
//! The tunnel copies bytes without speaking WebSocket, so a close frame may only go to the
//! client between two of the upstream's frames: [`Downstream`] copies the upstream's bytes
//! to the client while [`Frames`] follows the frame boundaries of exactly what the client
//! was sent. When the tunnel stops, the frame the client is in the middle of is finished
//! first (within [`FINISH_FRAME`]), then the close frame is sent; without the rest of that
//! frame in time, the connection is only shut down.
//!
//! The gateway's code is 1008 (policy violation), a registered code any WebSocket client
//! understands, rather than an application's own range (4000–4999, where an app behind the
//! gateway may define its codes: the library's examples close with 4401 from inside the app).

use std::io;
use std::ops::Range;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

/// How long the rest of a frame the client is in the middle of may take to arrive.
pub(crate) const FINISH_FRAME: Duration = Duration::from_secs(1);
/// How long the client has to answer the close frame before the connection is shut down.
pub(crate) const CLOSE_ANSWER: Duration = Duration::from_millis(500);

/// A WebSocket close: its status code and reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Close {
    /// The status code (RFC 6455 §7.4).
    pub(crate) code: u16,
    /// The reason (at most 123 bytes).
    pub(crate) reason: &'static str,
}

/// A revoked session's WebSocket.
pub(crate) const SESSION_REVOKED: Close = Close {
    code: 1008,
    reason: "session revoked",
};
/// Every WebSocket at shutdown.
pub(crate) const GOING_AWAY: Close = Close {
    code: 1001,
    reason: "gateway shutting down",
};

impl Close {
    /// The unmasked close frame a server sends.
    pub(crate) fn frame(self) -> Vec<u8> {
        let reason = &self.reason.as_bytes()[..self.reason.len().min(123)];
        let mut frame = Vec::with_capacity(4 + reason.len());
        // FIN + opcode 8 (close); unmasked, a payload of code + reason (< 126 bytes).
        frame.push(0x88);
        frame.push(2 + reason.len() as u8);
        frame.extend_from_slice(&self.code.to_be_bytes());
        frame.extend_from_slice(reason);
        frame
    }
}

/// Where a byte stream is among WebSocket frames (RFC 6455 §5.2).
#[derive(Debug, Default)]
pub(crate) struct Frames {
    /// The header being read (at most 14 bytes) and how much of it was seen.
    header: [u8; 14],
    have: usize,
    /// Payload bytes left in the current frame.
    remaining: u64,
}

impl Frames {
    /// Follows `bytes`, the next bytes of the stream.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.remaining > 0 {
                let n = bytes
                    .len()
                    .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                self.remaining -= n as u64;
                bytes = &bytes[n..];
                continue;
            }
            self.header[self.have] = bytes[0];
            self.have += 1;
            bytes = &bytes[1..];
            if let Some(payload) = self.payload_length() {
                self.have = 0;
                self.remaining = payload;
            }
        }
    }

    /// The payload length once the header is complete.
    fn payload_length(&self) -> Option<u64> {
        if self.have < 2 {
            return None;
        }
        let h = &self.header;
        let (extended, length) = match h[1] & 0x7f {
            126 => (2, None),
            127 => (8, None),
            n => (0, Some(u64::from(n))),
        };
        let mask = if h[1] & 0x80 != 0 { 4 } else { 0 };
        if self.have < 2 + extended + mask {
            return None;
        }
        length.or_else(|| match extended {
            2 => Some(u64::from(u16::from_be_bytes([h[2], h[3]]))),
            _ => Some(u64::from_be_bytes(h[2..10].try_into().ok()?)),
        })
    }

    /// Whether the stream is between two frames.
    pub(crate) fn at_boundary(&self) -> bool {
        self.have == 0 && self.remaining == 0
    }

    /// How many bytes may follow before the next boundary is passed (a header is taken one
    /// byte at a time: its length is known only once its second byte is).
    fn to_boundary(&self) -> usize {
        if self.remaining > 0 {
            usize::try_from(self.remaining).unwrap_or(usize::MAX)
        } else {
            1
        }
    }
}

/// The upstream-to-client half of a tunnel: what was read from the upstream and not yet
/// written survives the copy's cancellation, and [`Frames`] counts exactly what the client
/// was sent.
pub(crate) struct Downstream {
    buf: Vec<u8>,
    pending: Range<usize>,
    frames: Frames,
}

impl Downstream {
    pub(crate) fn new() -> Self {
        Self {
            buf: vec![0; 8 * 1024],
            pending: 0..0,
            frames: Frames::default(),
        }
    }

    /// Copies `from` to `to` until `from` ends; returns the bytes copied. Cancel-safe.
    pub(crate) async fn copy<R, W>(&mut self, from: &mut R, to: &mut W) -> io::Result<u64>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut copied = 0;
        loop {
            if self.pending.is_empty() {
                let n = from.read(&mut self.buf).await?;
                if n == 0 {
                    to.flush().await?;
                    return Ok(copied);
                }
                self.pending = 0..n;
            }
            copied += self.write_some(to, usize::MAX).await? as u64;
        }
    }

    /// Writes at most `limit` of the pending bytes; how many were written.
    async fn write_some<W: AsyncWrite + Unpin>(
        &mut self,
        to: &mut W,
        limit: usize,
    ) -> io::Result<usize> {
        let end = self
            .pending
            .end
            .min(self.pending.start.saturating_add(limit));
        let n = to.write(&self.buf[self.pending.start..end]).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        self.frames
            .feed(&self.buf[self.pending.start..self.pending.start + n]);
        self.pending.start += n;
        Ok(n)
    }

    /// Sends `to` the rest of the frame it is in the middle of (read from `from`), then
    /// `close`.
    ///
    /// # Errors
    ///
    /// When a side fails or `from` ends before the frame does.
    pub(crate) async fn close<R, W>(
        &mut self,
        from: &mut R,
        to: &mut W,
        close: Close,
    ) -> io::Result<()>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        while !self.frames.at_boundary() {
            let want = self.frames.to_boundary();
            if self.pending.is_empty() {
                let n = from.read(&mut self.buf[..want.min(8 * 1024)]).await?;
                if n == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                self.pending = 0..n;
            }
            self.write_some(to, want).await?;
        }
        to.write_all(&close.frame()).await?;
        to.flush().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server frame's header for a payload of `len` bytes.
    fn header(len: usize, masked: bool) -> Vec<u8> {
        let mask_bit = if masked { 0x80 } else { 0 };
        let mut h = vec![0x82];
        match len {
            0..=125 => h.push(mask_bit | len as u8),
            126..=0xffff => {
                h.push(mask_bit | 126);
                h.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                h.push(mask_bit | 127);
                h.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        if masked {
            h.extend_from_slice(&[1, 2, 3, 4]);
        }
        h
    }

    #[test]
    fn frame_boundaries_are_followed_across_any_split() {
        // If this broke, the gateway would put its close frame inside one of the upstream's
        // frames and the browser would fail the connection (1002/1006) instead of reading
        // "session revoked".
        let mut stream = Vec::new();
        let mut boundaries = vec![0];
        for (len, masked) in [
            (5, false),
            (0, false),
            (300, true),
            (70_000, false),
            (1, true),
        ] {
            stream.extend(header(len, masked));
            stream.extend(std::iter::repeat_n(7u8, len));
            boundaries.push(stream.len());
        }
        for step in [1, 2, 3, 13, 1000] {
            let mut frames = Frames::default();
            for (i, chunk) in stream.chunks(step).enumerate() {
                frames.feed(chunk);
                let at = ((i + 1) * step).min(stream.len());
                assert_eq!(
                    frames.at_boundary(),
                    boundaries.contains(&at),
                    "step {step} at {at}"
                );
            }
        }
    }

    #[test]
    fn the_close_frame_is_sent_after_the_frame_in_flight() {
        // If this broke, a revoked session's socket would get a close frame mid-frame
        // (garbage to the browser), or no close frame at all.
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(async {
                let mut upstream_bytes = header(10, false);
                upstream_bytes.extend_from_slice(b"0123456789");
                let mut down = Downstream::new();
                // The client was sent the header and 4 bytes of the payload only.
                let mut sent = Vec::new();
                down.buf[..upstream_bytes.len()].copy_from_slice(&upstream_bytes);
                down.pending = 0..6;
                while !down.pending.is_empty() {
                    down.write_some(&mut sent, usize::MAX).await.unwrap();
                }
                assert!(!down.frames.at_boundary());
                let mut rest: &[u8] = &upstream_bytes[6..];
                down.close(&mut rest, &mut sent, SESSION_REVOKED)
                    .await
                    .unwrap();
                let mut expected = upstream_bytes.clone();
                expected.extend_from_slice(&[0x88, 17, 0x03, 0xf0]);
                expected.extend_from_slice(b"session revoked");
                assert_eq!(sent, expected);
            });
    }
}
