//! [`ResponseBody`]: the inner service's body, or a body this crate wrote itself.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

/// A boxed error, as used by `tower` and `hyper`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pin_project! {
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind<B> {
        Inner {
            #[pin]
            body: B,
        },
        Full {
            data: Option<Bytes>,
        },
    }
}

pin_project! {
    /// The response body of [`StytchAuth`](crate::StytchAuth): either the inner service's body,
    /// untouched and streamed, or a small body written by this crate (rejections, logout,
    /// admin routes).
    #[derive(Debug)]
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

impl<B> ResponseBody<B> {
    /// Wraps the inner service's body.
    pub fn inner(body: B) -> Self {
        Self {
            kind: Kind::Inner { body },
        }
    }

    /// A complete body.
    pub fn full(data: Bytes) -> Self {
        Self {
            kind: Kind::Full {
                data: (!data.is_empty()).then_some(data),
            },
        }
    }
}

impl<B> Default for ResponseBody<B> {
    fn default() -> Self {
        Self {
            kind: Kind::Full { data: None },
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx).map_err(Into::into),
            KindProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Full { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    #[tokio::test]
    async fn both_variants_stream_their_bytes() {
        // If this broke, rejection bodies or the app's own bodies would arrive empty or cut.
        let inner: ResponseBody<Full<Bytes>> = ResponseBody::inner(Full::new(Bytes::from("app")));
        assert_eq!(inner.collect().await.unwrap().to_bytes(), "app");
        let own: ResponseBody<Full<Bytes>> = ResponseBody::full(Bytes::from("{\"a\":1}"));
        assert_eq!(own.size_hint().exact(), Some(7));
        assert_eq!(own.collect().await.unwrap().to_bytes(), "{\"a\":1}");
        let empty: ResponseBody<Full<Bytes>> = ResponseBody::default();
        assert!(empty.is_end_stream());
    }
}
