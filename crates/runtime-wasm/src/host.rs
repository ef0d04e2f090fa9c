//! The per-isolate host state: WASI context, HTTP context, memory limiter and outbound policy.

use std::sync::{Arc, Mutex};

use muon_manifest::OutboundPolicy;
use muon_runtime::Destinations;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{
    RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView,
};

pub struct Host {
    pub table: ResourceTable,
    pub wasi: WasiCtx,
    pub http: WasiHttpCtx,
    pub hooks: Outbound,
    pub limiter: MemoryLimiter,
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Host {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// Stops a guest that grows its memory past the function's limit, and remembers that it did.
pub struct MemoryLimiter {
    pub limit: usize,
    pub exceeded: bool,
}

/// The most table elements a guest may have (function tables of large programs stay far below).
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.exceeded = true;
            wasmtime::bail!(
                "memory limit exceeded: the guest asked for {} MiB, the limit is {} MiB",
                desired.div_ceil(1 << 20),
                self.limit >> 20
            );
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// The outbound HTTP hook: requests to hosts the manifest does not allow never leave the machine,
/// and neither do requests whose host resolves to an address the destination policy refuses
/// (checked after resolution: an allowed name that resolves to the metadata address or to muon's
/// own control API is refused). muon's own sockets are reached only with the function's events
/// token, which the control API grants PutEvents alone.
pub struct Outbound {
    pub policy: Arc<OutboundPolicy>,
    pub destinations: Arc<Destinations>,
    /// `Bearer <token>`, when the function may publish events.
    pub events_authorization: Option<Arc<str>>,
    /// Requests refused in this invocation, reported in its logs. Made at the first outbound
    /// request, so an isolate that sends none allocates nothing for it.
    pub denied: Option<Arc<Mutex<Vec<String>>>>,
}

type SendFuture = Box<
    dyn Future<
            Output = wasmtime_wasi_http::Result<(
                http::Response<WasiBody>,
                Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
            )>,
        > + Send,
>;

impl WasiHttpHooks for Outbound {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> SendFuture {
        let uri = request.uri();
        let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
        let host = uri
            .host()
            .unwrap_or("")
            .trim_matches(['[', ']'])
            .to_string();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "http" { 80 } else { 443 });
        let allowed = !host.is_empty() && self.policy.allows(&scheme, &host, port);
        let denied = self.denied.get_or_insert_with(Default::default).clone();
        let deny = move |why: String| {
            denied
                .lock()
                .expect("no panics under the lock")
                .push(format!(
                    "outbound request to {scheme}://{host}:{port} denied: {why}"
                ));
            Err(wasmtime_wasi_http::Error::HttpRequestDenied)
        };
        if !allowed {
            let refused = deny("not in allowed_outbound_hosts".into());
            return Box::new(async move { refused });
        }
        drop(fut);
        let destinations = self.destinations.clone();
        let carries_token = self
            .events_authorization
            .as_deref()
            .is_some_and(|expected| {
                request
                    .headers()
                    .get(http::header::AUTHORIZATION)
                    .is_some_and(|v| v.as_bytes() == expected.as_bytes())
            });
        Box::new(async move {
            use http_body_util::BodyExt;
            let target = request
                .uri()
                .host()
                .unwrap_or("")
                .trim_matches(['[', ']'])
                .to_string();
            let addrs: Vec<std::net::SocketAddr> =
                match tokio::net::lookup_host((target, port)).await {
                    Ok(a) => a.collect(),
                    Err(e) => return deny(format!("cannot resolve the host: {e}")),
                };
            for addr in &addrs {
                // muon's own control API, with the events token: the API itself checks what
                // the token grants.
                if carries_token && destinations.is_own(*addr) {
                    continue;
                }
                if let Err(refused) = destinations.check(*addr) {
                    return deny(refused.why.to_string());
                }
            }
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}
