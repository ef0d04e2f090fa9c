//! What a target receives: the event, a constant, a part of it, or a template filled from it.

use muon_manifest::{Input, Rule};
use serde_json::Value;

/// The body and its content type for `input`, given the event.
pub(crate) fn render(
    input: &Input,
    event: &Value,
    event_text: &str,
    rule: &Rule,
    account: &str,
    region: &str,
) -> Result<(String, &'static str), String> {
    const JSON: &str = "application/json";
    match input {
        Input::Event => Ok((event_text.to_string(), JSON)),
        Input::Constant(c) => Ok((c.clone(), JSON)),
        Input::Path(path) => match path.select(event) {
            Some(v) => Ok((v.to_string(), JSON)),
            None => Err(format!(
                "InputPath {} selects nothing in the event",
                path.text
            )),
        },
        Input::Transformer { paths, template } => {
            let mut values = std::collections::BTreeMap::new();
            for (name, path) in paths {
                // A path that selects nothing is substituted as null, as EventBridge does.
                let text = match path.select(event) {
                    None | Some(Value::Null) => "null".to_string(),
                    // Substituted strings are not escaped: the template decides the quoting.
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                };
                values.insert(name.as_str(), text);
            }
            let rule_arn = format!(
                "arn:aws:events:{region}:{account}:rule/{}{}",
                if rule.bus.as_str() == "default" {
                    String::new()
                } else {
                    format!("{}/", rule.bus)
                },
                rule.name
            );
            let ingestion = event
                .get("time")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let reserved = [
                ("aws.events.rule-name", rule.name.to_string()),
                ("aws.events.rule-arn", rule_arn),
                ("aws.events.event", event_text.to_string()),
                ("aws.events.event.json", event_text.to_string()),
                ("aws.events.event.ingestion-time", ingestion),
            ];
            let mut out = String::with_capacity(template.len());
            let mut rest = template.as_str();
            while let Some(open) = rest.find('<') {
                out.push_str(&rest[..open]);
                let after = &rest[open + 1..];
                match after.find('>') {
                    Some(close) => {
                        let name = &after[..close];
                        let value = values.get(name).map(String::as_str).or_else(|| {
                            reserved
                                .iter()
                                .find(|(n, _)| *n == name)
                                .map(|(_, v)| v.as_str())
                        });
                        match value {
                            Some(v) => out.push_str(v),
                            // Not a variable: the text stays as written.
                            None => {
                                out.push('<');
                                out.push_str(name);
                                out.push('>');
                            }
                        }
                        rest = &after[close + 1..];
                    }
                    None => {
                        out.push('<');
                        rest = after;
                    }
                }
            }
            out.push_str(rest);
            let is_json = serde_json::from_str::<Value>(&out).is_ok();
            Ok((out, if is_json { JSON } else { "text/plain" }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use muon_manifest::JsonPath;

    fn rule() -> Rule {
        Rule::from_api_json(r#"{"Name":"orders","EventPattern":{"source":["shop"]}}"#).unwrap()
    }

    #[test]
    fn inputs_render_like_eventbridge() {
        let text = r#"{"id":"e1","time":"2026-11-26T10:00:00Z","detail":{"order":"o-1","total":42.5,"items":[{"sku":"A"}],"gift":null}}"#;
        let event: Value = serde_json::from_str(text).unwrap();
        let r = rule();
        let render = |input: &Input| render(input, &event, text, &r, "123", "local");
        assert_eq!(render(&Input::Event).unwrap().0, text);
        let path = Input::Path(JsonPath::parse("$.detail.items[0]").unwrap());
        assert_eq!(
            render(&path).unwrap(),
            (r#"{"sku":"A"}"#.into(), "application/json")
        );
        let missing = Input::Path(JsonPath::parse("$.detail.nope").unwrap());
        assert!(render(&missing).is_err());
        let paths = [
            ("order", "$.detail.order"),
            ("total", "$.detail.total"),
            ("gift", "$.detail.gift"),
            ("none", "$.detail.none"),
        ]
        .into_iter()
        .map(|(k, p)| (k.to_string(), JsonPath::parse(p).unwrap()))
        .collect();
        let t = Input::Transformer {
            paths,
            template: r#"{"o": "<order>", "t": <total>, "g": <gift>, "n": <none>, "rule": "<aws.events.rule-name>", "x": "<other>"}"#.into(),
        };
        let (body, kind) = render(&t).unwrap();
        assert_eq!(
            body,
            r#"{"o": "o-1", "t": 42.5, "g": null, "n": null, "rule": "orders", "x": "<other>"}"#
        );
        assert_eq!(kind, "application/json");
        let plain = Input::Transformer {
            paths: [(
                "order".to_string(),
                JsonPath::parse("$.detail.order").unwrap(),
            )]
            .into(),
            template: "Order <order> placed".into(),
        };
        assert_eq!(
            render(&plain).unwrap(),
            ("Order o-1 placed".into(), "text/plain")
        );
    }
}
