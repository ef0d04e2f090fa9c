//! Schedules: at each firing of `cron(...)`, `rate(...)` or `at(...)`, put a "Scheduled Event"
//! on the schedule's bus; the schedule's own rule delivers it to its targets, with the same
//! retries and dead-letter queue as any event.
//!
//! Firings while muon is not running are not made up afterwards (like EventBridge Scheduler
//! without a flexible window); an `at(...)` in the past never fires.

use std::sync::Weak;
use std::time::Duration;

use chrono::Utc;
use muon_manifest::Schedule;
use muon_manifest::rule::{SCHEDULE_DETAIL_TYPE, SCHEDULE_SOURCE};

use crate::trace::TraceContext;
use crate::{Bus, Inner};

pub(crate) async fn run(bus: Weak<Inner>, schedule: Schedule) {
    let parsed =
        match muon_schedule::Schedule::parse(&schedule.expression, schedule.timezone.as_deref()) {
            // A rate counts its periods from now.
            Ok(s) => s.with_anchor(Utc::now()),
            Err(e) => {
                tracing::error!("schedule {}: {e}", schedule.rule.name);
                return;
            }
        };
    let mut after = Utc::now();
    while let Some(next) = parsed.next_after(after) {
        let wait = (next - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        tokio::time::sleep(wait).await;
        after = next;
        let Some(inner) = bus.upgrade() else {
            return;
        };
        if !schedule.rule.enabled {
            continue;
        }
        let bus = Bus { inner };
        let envelope = serde_json::json!({
            "version": "0",
            "id": "",
            "detail-type": SCHEDULE_DETAIL_TYPE,
            "source": SCHEDULE_SOURCE,
            "account": bus.inner.config.account,
            "time": next.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            "region": bus.inner.config.region,
            "resources": [schedule.resource()],
            "detail": {},
        });
        if let Err(e) = bus
            .put_envelope(&schedule.rule.bus, envelope, TraceContext::new_root())
            .await
        {
            tracing::error!(
                "schedule {} could not put its event: {}: {}",
                schedule.rule.name,
                e.code,
                e.message
            );
        }
    }
}
