//! Unit tests of the invoker and the journal.
use super::*;
use http_body_util::BodyExt;

/// A function that answers with its input, and logs it.
struct Echo;

impl Function for Echo {
    fn invoke(
        &self,
        cx: InvocationContext,
        request: Request,
    ) -> BoxFuture<Result<Response, Failure>> {
        Box::pin(async move {
            let (_id, finish) = cx.into_parts();
            let body = request
                .into_body()
                .collect()
                .await
                .map_err(|e| Failure::new(Status::Trap, e.to_string()))?;
            let text = String::from_utf8_lossy(&body.to_bytes()).into_owned();
            let status = if text == "fail" {
                Status::Trap
            } else {
                Status::Ok
            };
            finish(Finished {
                status,
                http_status: Some(200),
                message: (status != Status::Ok).then(|| "asked to fail".to_string()),
                logs: vec![(Stream::Stdout, format!("got {text}"))],
            });
            if status == Status::Ok {
                Ok(http::Response::new(full(text)))
            } else {
                Err(Failure::new(status, "asked to fail"))
            }
        })
    }
}

fn invoker() -> Invoker {
    let name = FunctionName::new("echo").unwrap();
    Invoker::builder()
        .function(
            FunctionMeta {
                name,
                runtime: "test",
                route: None,
                memory_mb: 1,
                timeout: Duration::from_secs(1),
                min_instances: 0,
                max_instances: 1,
                instance_reuse: 1,
                source: "memory".into(),
            },
            Arc::new(Echo),
        )
        .build()
}

#[tokio::test]
async fn invocations_are_recorded_with_their_logs() {
    let invoker = invoker();
    let name = FunctionName::new("echo").unwrap();
    let mut follow = invoker.journal().follow();
    let (id, result) = invoker
        .invoke(&name, http::Request::new(full("hi")))
        .await
        .unwrap();
    let response = result.unwrap();
    assert_eq!(
        response.headers()[INVOCATION_ID_HEADER].to_str().unwrap(),
        id.to_string()
    );
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"hi");

    let (record, logs) = invoker.journal().invocation(id).unwrap();
    assert_eq!(record.status, Status::Ok);
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].text, "got hi");
    assert_eq!(follow.recv().await.unwrap().text, "got hi");

    let (failed, result) = invoker
        .invoke(&name, http::Request::new(full("fail")))
        .await
        .unwrap();
    assert_eq!(result.unwrap_err().http_status(), 500);
    let (record, logs) = invoker.journal().invocation(failed).unwrap();
    assert_eq!(record.status, Status::Trap);
    assert_eq!(logs.last().unwrap().stream, Stream::Platform);
    assert!(logs.last().unwrap().text.contains("asked to fail"));

    let counts = invoker.journal().counts(&name);
    assert_eq!((counts.invocations, counts.failed), (2, 1));
    assert_eq!(invoker.journal().invocations(&name, 10)[0].id, failed);
    assert_eq!(invoker.journal().logs(&name, 1).len(), 1);
}

#[tokio::test]
async fn unknown_functions_are_none() {
    let invoker = invoker();
    let missing = FunctionName::new("missing").unwrap();
    assert!(
        invoker
            .invoke(&missing, http::Request::new(empty()))
            .await
            .is_none()
    );
}

#[tokio::test]
async fn limited_bodies_flag_overflow() {
    let (body, exceeded) = LimitedBody::new(full(vec![0u8; 10]), 4);
    assert!(body.collect().await.is_err());
    assert!(exceeded.load(std::sync::atomic::Ordering::Acquire));
    let (body, exceeded) = LimitedBody::new(full(vec![0u8; 4]), 4);
    assert_eq!(body.collect().await.unwrap().to_bytes().len(), 4);
    assert!(!exceeded.load(std::sync::atomic::Ordering::Acquire));
}

#[tokio::test]
async fn the_journal_keeps_a_bounded_amount_of_log_text() {
    let journal = Journal::default();
    let name = FunctionName::new("noisy").unwrap();
    for _ in 0..2000 {
        journal.record(
            name.clone(),
            InvocationId::random(),
            SystemTime::now(),
            Duration::ZERO,
            Finished {
                status: Status::Ok,
                http_status: Some(200),
                message: None,
                logs: vec![(Stream::Stdout, "x".repeat(100_000))],
            },
        );
    }
    let logs = journal.logs(&name, usize::MAX);
    let bytes: usize = logs.iter().map(|l| l.text.len()).sum();
    assert!(bytes <= journal::LOG_BYTES_KEPT, "{bytes}");
    assert!(logs.iter().all(|l| l.text.ends_with("[line truncated]")));
    assert_eq!(
        journal.invocations(&name, usize::MAX).len(),
        journal::INVOCATIONS_KEPT
    );
    assert_eq!(journal.counts(&name).invocations, 2000);
}
