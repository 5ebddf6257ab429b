//! `get_ref`, `get_mut` and `into_inner` for every service, as tower-http
//! gives them.

macro_rules! define_inner_service_accessors {
    ($service:ident) => {
        impl<S> $service<S> {
            /// The inner service.
            pub fn get_ref(&self) -> &S {
                &self.inner
            }

            /// The inner service, mutably.
            pub fn get_mut(&mut self) -> &mut S {
                &mut self.inner
            }

            /// Consumes this service, returning the inner one.
            pub fn into_inner(self) -> S {
                self.inner
            }
        }
    };
}

pub(crate) use define_inner_service_accessors;

/// The `Layer` impl, the service and its `Service` impl of a check on the
/// token an `AuthLayer` admitted (scopes, a claims predicate): the layer
/// holds `check` (a type with `check_request`) and `realm`; a refusal is
/// answered in the request's protocol, the inner service never called.
macro_rules! define_token_check {
    ($layer:ident, $service:ident, $doc:literal) => {
        impl<S> tower_layer::Layer<S> for $layer {
            type Service = $service<S>;

            fn layer(&self, inner: S) -> $service<S> {
                $service {
                    inner,
                    layer: self.clone(),
                }
            }
        }

        #[doc = $doc]
        #[derive(Clone, Debug)]
        pub struct $service<S> {
            inner: S,
            layer: $layer,
        }

        crate::macros::define_inner_service_accessors!($service);

        impl<S, ReqB, ResB> tower_service::Service<http::Request<ReqB>> for $service<S>
        where
            S: tower_service::Service<http::Request<ReqB>, Response = http::Response<ResB>>,
            ResB: From<String>,
        {
            type Response = http::Response<ResB>;
            type Error = S::Error;
            type Future = crate::scope::ScopeFuture<S::Future, ResB>;

            fn poll_ready(
                &mut self,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Result<(), S::Error>> {
                self.inner.poll_ready(cx)
            }

            fn call(&mut self, req: http::Request<ReqB>) -> Self::Future {
                let found = req
                    .extensions()
                    .get::<tollgate_core::gate::Authentication>();
                match self.layer.check.check_request(found) {
                    Ok(()) => crate::scope::ScopeFuture::inner(self.inner.call(req)),
                    Err(err) => crate::scope::ScopeFuture::refused(crate::auth::respond(
                        tollgate_core::gate::Rejection::inner(
                            err,
                            self.layer.realm.as_deref(),
                            crate::auth::protocol(&req),
                        ),
                    )),
                }
            }
        }
    };
}

pub(crate) use define_token_check;
