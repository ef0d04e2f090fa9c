//! Retry backoff: how long to wait before attempt `n` of a retrier.

use crate::definition::Retrier;
use crate::rng::Rng;

/// The delay before the retry numbered `attempt` (1 for the first retry):
/// `IntervalSeconds * BackoffRate^(attempt-1)`, capped by `MaxDelaySeconds`,
/// and with `JitterStrategy: FULL` a uniformly random part of that.
pub fn retry_delay_millis(retrier: &Retrier, attempt: u32, rng: &mut Rng) -> u64 {
    let exp = attempt.saturating_sub(1) as i32;
    let mut secs = retrier.interval_seconds * retrier.backoff_rate.powi(exp);
    if let Some(max) = retrier.max_delay_seconds {
        secs = secs.min(max);
    }
    let mut ms = (secs * 1000.0).min(1.0e15);
    if retrier.jitter_full {
        ms *= rng.next_f64();
    }
    ms.round() as u64
}

/// Whether an error name matches a retrier's or catcher's `ErrorEquals`.
pub fn error_matches(error_equals: &[String], error: &str) -> bool {
    if error == crate::errors::RUNTIME {
        return false;
    }
    // An empty list matches every error, as Step Functions does.
    error_equals.is_empty()
        || error_equals.iter().any(|e| {
            e == error
                || e == crate::errors::ALL
                || (e == crate::errors::TASK_FAILED
                    && error != crate::errors::TIMEOUT
                    && !error.is_empty())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retrier(jitter: bool, max: Option<f64>) -> Retrier {
        Retrier {
            error_equals: vec!["States.ALL".into()],
            interval_seconds: 3.0,
            max_attempts: 5,
            backoff_rate: 2.0,
            max_delay_seconds: max,
            jitter_full: jitter,
        }
    }

    #[test]
    fn backoff_grows_and_caps() {
        let mut rng = Rng::new(1);
        let r = retrier(false, None);
        let d: Vec<u64> = (1..=4)
            .map(|a| retry_delay_millis(&r, a, &mut rng))
            .collect();
        assert_eq!(d, [3000, 6000, 12000, 24000]);
        let r = retrier(false, Some(5.0));
        let d: Vec<u64> = (1..=3)
            .map(|a| retry_delay_millis(&r, a, &mut rng))
            .collect();
        assert_eq!(d, [3000, 5000, 5000]);
    }

    #[test]
    fn full_jitter_draws_from_the_injected_rng() {
        let r = retrier(true, Some(5.0));
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        for attempt in 1..=10 {
            let x = retry_delay_millis(&r, attempt, &mut a);
            assert!(x <= 5000);
            assert_eq!(x, retry_delay_millis(&r, attempt, &mut b));
        }
    }

    #[test]
    fn error_matching() {
        let all = vec!["States.ALL".to_string()];
        let tf = vec!["States.TaskFailed".to_string()];
        assert!(error_matches(&all, "Lambda.Unknown"));
        assert!(!error_matches(&all, "States.Runtime"));
        assert!(error_matches(&tf, "Exception"));
        assert!(!error_matches(&tf, "States.Timeout"));
    }
}
