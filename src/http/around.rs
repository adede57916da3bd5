//! The edge's own middleware (metrics, error pages, the body's deadline, CSRF) as one small
//! layer each: a [`Hook`] looks at the request before the routes and at the answer after them.
//!
//! Hand-written instead of `axum::middleware::from_fn` for what every request pays: `from_fn`
//! clones the whole stack below it, boxes it and boxes its future on every call, so four of
//! them nested made a third of the CPU of `GET /healthz` and a tenth of a JSON read
//! (BENCHMARKS.md, item 20). Here the common case (a hook that decides from the request alone)
//! is the inner call's own future with the hook beside it; only a hook that must await
//! something first (a body to read) boxes, and clones the stack below it, as `from_fn` did.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    task::{ready, Context, Poll},
};

use axum::{
    extract::Request,
    response::{IntoResponse, Response},
};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// What a hook makes of a request before the routes see it.
pub(super) enum Before<M> {
    /// Go on now with this request; `after` gets the memo with the answer.
    Go(Request, M),
    /// Answer in the routes' place (a refusal); `after` is not called.
    Answer(Response),
    /// Await this first (the rare path: a body to read), then go on or answer.
    Await(BoxFuture<Result<(Request, M), Response>>),
}

pub(super) trait Hook: Clone + Send + Sync + 'static {
    /// What `after` needs to know of the request.
    type Memo: Send + 'static;
    fn before(&self, req: Request) -> Before<Self::Memo>;
    fn after(&self, memo: Self::Memo, resp: Response) -> Response;
}

/// [`Layer`] running `H` around the services below it.
#[derive(Clone)]
pub(super) struct AroundLayer<H>(pub(super) H);

impl<S, H: Clone> Layer<S> for AroundLayer<H> {
    type Service = Around<S, H>;

    fn layer(&self, inner: S) -> Around<S, H> {
        Around {
            inner,
            hook: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub(super) struct Around<S, H> {
    inner: S,
    hook: H,
}

impl<S, H> Service<Request> for Around<S, H>
where
    S: Service<Request, Error = Infallible> + Clone + Send + 'static,
    S::Response: IntoResponse,
    S::Future: Send,
    H: Hook,
{
    type Response = Response;
    type Error = Infallible;
    type Future = AroundFuture<S, H>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let hook = self.hook.clone();
        match hook.before(req) {
            Before::Go(req, memo) => AroundFuture::Inner {
                fut: self.inner.call(req),
                hook: Some((hook, memo)),
            },
            Before::Answer(resp) => AroundFuture::Answered { resp: Some(resp) },
            Before::Await(first) => {
                // `self.inner` was made ready for this call: it waits with the request (and
                // is asked again before it is called), and a clone stays for the next call.
                let clone = self.inner.clone();
                AroundFuture::Awaiting {
                    first,
                    inner: Some(std::mem::replace(&mut self.inner, clone)),
                    hook: Some(hook),
                }
            }
        }
    }
}

pin_project! {
    #[project = Step]
    pub(super) enum AroundFuture<S: Service<Request>, H: Hook> {
        Inner { #[pin] fut: S::Future, hook: Option<(H, H::Memo)> },
        Answered { resp: Option<Response> },
        Awaiting {
            first: BoxFuture<Result<(Request, H::Memo), Response>>,
            inner: Option<S>,
            hook: Option<H>,
        },
    }
}

impl<S, H> Future for AroundFuture<S, H>
where
    S: Service<Request, Error = Infallible>,
    S::Response: IntoResponse,
    H: Hook,
{
    type Output = Result<Response, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            match self.as_mut().project() {
                Step::Inner { fut, hook } => {
                    let Ok(resp) = ready!(fut.poll(cx));
                    let (hook, memo) = hook.take().expect("polled after completion");
                    return Poll::Ready(Ok(hook.after(memo, resp.into_response())));
                }
                Step::Answered { resp } => {
                    return Poll::Ready(Ok(resp.take().expect("polled after completion")));
                }
                Step::Awaiting { first, inner, hook } => {
                    let service = inner.as_mut().expect("polled after completion");
                    let Ok(()) = ready!(service.poll_ready(cx));
                    let next = match ready!(first.as_mut().poll(cx)) {
                        Ok((req, memo)) => AroundFuture::Inner {
                            fut: service.call(req),
                            hook: hook.take().map(|h| (h, memo)),
                        },
                        Err(resp) => AroundFuture::Answered { resp: Some(resp) },
                    };
                    self.set(next);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    };

    use axum::{body::Body, http::StatusCode};
    use tower::ServiceExt;

    use super::*;

    /// Answers `/refused` itself, reads `/later` after a pause, lets the rest go, and marks
    /// every answer it saw after the routes.
    #[derive(Clone)]
    struct Test;

    impl Hook for Test {
        type Memo = &'static str;

        fn before(&self, req: Request) -> Before<&'static str> {
            match req.uri().path() {
                "/refused" => Before::Answer(StatusCode::FORBIDDEN.into_response()),
                "/later" => Before::Await(Box::pin(async move {
                    tokio::task::yield_now().await;
                    Ok((req, "awaited"))
                })),
                _ => Before::Go(req, "went"),
            }
        }

        fn after(&self, memo: &'static str, mut resp: Response) -> Response {
            resp.headers_mut()
                .insert("x-after", memo.parse().expect("a header value"));
            resp
        }
    }

    /// Answers 202, counting its calls; like tower's services, it must be made ready for each
    /// call (its clones are not), or it panics.
    struct Routes {
        calls: Arc<AtomicUsize>,
        ready: bool,
    }

    impl Service<Request> for Routes {
        type Response = Response;
        type Error = Infallible;
        type Future = std::future::Ready<Result<Response, Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            self.ready = true;
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: Request) -> Self::Future {
            assert!(
                std::mem::take(&mut self.ready),
                "called without being made ready"
            );
            self.calls.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Ok(StatusCode::ACCEPTED.into_response()))
        }
    }

    impl Clone for Routes {
        fn clone(&self) -> Self {
            Routes {
                calls: self.calls.clone(),
                ready: false,
            }
        }
    }

    #[tokio::test]
    async fn the_routes_run_once_unless_the_hook_answers_and_after_sees_what_they_answered() {
        let calls = Arc::new(AtomicUsize::new(0));
        let routes = Routes {
            calls: calls.clone(),
            ready: false,
        };
        let service = AroundLayer(Test).layer(routes);
        let send = |path: &str| {
            let req = Request::builder()
                .uri(path)
                .body(Body::empty())
                .expect("a request");
            service.clone().oneshot(req)
        };

        let Ok(refused) = send("/refused").await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        assert!(refused.headers().get("x-after").is_none());
        assert_eq!(calls.load(Ordering::SeqCst), 0);

        for (path, memo) in [("/now", "went"), ("/later", "awaited")] {
            let Ok(resp) = send(path).await;
            assert_eq!(resp.status(), StatusCode::ACCEPTED);
            assert_eq!(resp.headers()["x-after"], memo);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
