//! W3C trace context on events, and the tree of what one event caused.

use muon_store::{Delivery, EventQuery, EventRecord};
use muon_types::EventId;

use crate::{Bus, Result, random_u64};

/// The trace an event belongs to, and the span that published it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// 16 lowercase hex digits: the delivery during which the event was published.
    pub parent_span: Option<String>,
}

impl TraceContext {
    /// A new trace, started by this event.
    pub fn new_root() -> Self {
        Self {
            trace_id: format!("{:016x}{:016x}", random_u64(), random_u64()),
            parent_span: None,
        }
    }

    /// Read a `traceparent` header (`00-<trace-id>-<parent-id>-<flags>`); `None` if malformed.
    pub fn parse(header: &str) -> Option<Self> {
        let parts: Vec<&str> = header.trim().split('-').collect();
        let hex = |s: &str, n: usize| {
            s.len() == n
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        match parts.as_slice() {
            [version, trace, parent, flags, ..]
                if hex(version, 2)
                    && *version != "ff"
                    && hex(trace, 32)
                    && hex(parent, 16)
                    && hex(flags, 2)
                    && trace.bytes().any(|b| b != b'0')
                    && parent.bytes().any(|b| b != b'0') =>
            {
                Some(Self {
                    trace_id: trace.to_string(),
                    parent_span: Some(parent.to_string()),
                })
            }
            _ => None,
        }
    }

    /// The `traceparent` a delivery sends: this trace, with the delivery as the parent span.
    pub fn header_for(trace_id: &str, span: &str) -> String {
        format!("00-{trace_id}-{span}-01")
    }
}

/// Most deliveries in a row that may each publish the event that causes the next: past this, an
/// event is refused as a loop (a rule whose target is its own bus and whose pattern matches what
/// it puts there would otherwise go on forever).
pub const MAX_HOPS: u32 = 32;

/// How many deliveries in a row led to the events each delivery span publishes, remembered for
/// the spans of recent deliveries (bounded: past the cap all are forgotten, which only lets a
/// loop run some hops longer).
#[derive(Default)]
pub(crate) struct Hops {
    spans: std::sync::Mutex<std::collections::HashMap<String, u32>>,
    /// Events published during deliveries, per trace: a loop that fans out (a rule with two
    /// targets on its own bus) doubles at every hop, so hops alone do not bound it.
    traces: std::sync::Mutex<std::collections::HashMap<String, u32>>,
}

/// Most events that deliveries of one trace may publish: past this, a fanning loop is cut.
pub const MAX_TRACE_PUBLISHED: u32 = 10_000;

const MAX_REMEMBERED_SPANS: usize = 100_000;

impl Hops {
    /// The hops of an event published during `span` (0 outside any delivery).
    pub(crate) fn of(&self, span: Option<&str>) -> u32 {
        span.and_then(|s| {
            self.spans
                .lock()
                .expect("no panics under the lock")
                .get(s)
                .copied()
        })
        .unwrap_or(0)
    }

    /// Counts one more event published in `trace` during a delivery; whether the trace may
    /// still publish it.
    pub(crate) fn publish_in(&self, trace: &str) -> bool {
        let mut traces = self.traces.lock().expect("no panics under the lock");
        if traces.len() >= MAX_REMEMBERED_SPANS {
            traces.clear();
        }
        let n = traces.entry(trace.to_owned()).or_default();
        *n += 1;
        *n <= MAX_TRACE_PUBLISHED
    }

    /// Remembers that what `span` publishes is `hops` deliveries deep.
    pub(crate) fn note(&self, span: &str, hops: u32) {
        if hops == 0 {
            return;
        }
        let mut spans = self.spans.lock().expect("no panics under the lock");
        if spans.len() >= MAX_REMEMBERED_SPANS {
            spans.clear();
        }
        spans.insert(span.to_owned(), hops);
    }
}

/// One event, what it was delivered to, and what those deliveries published in turn.
#[derive(Debug, Clone)]
pub struct TraceNode {
    pub event: EventRecord,
    pub deliveries: Vec<(Delivery, Vec<TraceNode>)>,
    /// Events its deliveries published were left out: the trace reached its
    /// [`MAX_TRACE_EVENTS`] events.
    pub cut: bool,
}

/// A trace stops growing past this many events (a loop of rules could go on forever).
pub const MAX_TRACE_EVENTS: usize = 1000;

impl Bus {
    /// The tree of `id`: its deliveries and the events they published, recursively.
    pub async fn trace(&self, id: EventId) -> Result<Option<TraceNode>> {
        let Some(event) = self.inner.store.event(id).await? else {
            return Ok(None);
        };
        let mut budget = MAX_TRACE_EVENTS;
        Ok(Some(self.trace_node(event, &mut budget).await?))
    }

    fn trace_node<'a>(
        &'a self,
        event: EventRecord,
        budget: &'a mut usize,
    ) -> muon_store::BoxFuture<'a, Result<TraceNode>> {
        Box::pin(async move {
            *budget = budget.saturating_sub(1);
            let mut deliveries = Vec::new();
            let mut cut = false;
            for d in self.inner.store.deliveries_of(event.id).await? {
                let mut children = Vec::new();
                // One more than the budget says whether anything is left out.
                let emitted = self
                    .inner
                    .store
                    .events(EventQuery {
                        parent_span: Some(d.id.span_id()),
                        limit: *budget + 1,
                        ..Default::default()
                    })
                    .await?;
                for e in emitted {
                    if *budget == 0 {
                        cut = true;
                        break;
                    }
                    children.push(self.trace_node(e, budget).await?);
                }
                deliveries.push((d, children));
            }
            Ok(TraceNode {
                event,
                deliveries,
                cut,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::TraceContext;

    #[test]
    fn traceparent_headers_parse_strictly() {
        let t =
            TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.parent_span.as_deref(), Some("00f067aa0ba902b7"));
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        ] {
            assert!(TraceContext::parse(bad).is_none(), "{bad:?}");
        }
        assert_eq!(TraceContext::new_root().trace_id.len(), 32);
    }
}
