"""Seeds the fuzz corpora (one folder per target under argv[1]) from the conformance data in
argv[2], when it exists, and from a few inputs written here, so each target starts from real
inputs: Step Functions definitions, the JSONPaths and intrinsic calls in them, event patterns
with their events, and AWS request bodies."""
import json, os, sys

out, data = sys.argv[1], sys.argv[2]
seeds = {t: set() for t in
         ["asl", "jsonpath", "intrinsic", "schedule", "manifest", "aws", "cloudevents", "differential"]}

def walk(v):
    if isinstance(v, dict):
        for k, x in v.items():
            if isinstance(x, str) and (k.endswith(".$") or k.endswith("Path")):
                (seeds["intrinsic"] if x.startswith("States.") else seeds["jsonpath"]).add(x)
            walk(x)
    elif isinstance(v, list):
        for x in v:
            walk(x)

sf = os.path.join(data, "stepfunctions")
if os.path.isdir(sf):
    for name in sorted(os.listdir(sf)):
        case = json.load(open(os.path.join(sf, name)))
        definition = case.get("definition")
        if isinstance(definition, (dict, str)):
            text = definition if isinstance(definition, str) else json.dumps(definition)
            seeds["asl"].add(text)
            try:
                walk(json.loads(text))
            except ValueError:
                pass
ep = os.path.join(data, "event-patterns")
if os.path.isdir(ep):
    for name in sorted(os.listdir(ep)):
        case = json.load(open(os.path.join(ep, name)))
        pattern = case.get("pattern_text") or json.dumps(case.get("pattern"))
        event = case.get("event_text") or json.dumps(case.get("event"))
        seeds["differential"].add(pattern.replace("\n", " ") + "\n\n" + event)
        seeds["aws"].add(json.dumps({"Name": "r", "EventPattern": pattern, "Targets": [{"Id": "t", "Url": "http://x/"}]}))
        seeds["aws"].add(json.dumps({"Entries": [{"Source": "s", "DetailType": "d", "Detail": event}]}))

seeds["schedule"] |= {"cron(0 12 * * ? *)", "cron(15 10 ? * 6L 2024-2030)", "rate(5 minutes)",
                      "at(2030-01-01T00:00:00)\nEurope/Berlin", "cron(0/5 8-17 ? * MON-FRI *)\nAmerica/New_York",
                      "cron(0 2 ? * SUN#1 *)", "rate(1 day)"}
seeds["manifest"] |= {
    'app = "a"\n[[function]]\nname = "f"\nruntime = "wasm"\nsource = "f.wasm"\nroute = "/f/..."\n',
    'app = "a"\n[[rule]]\nname = "r"\npattern = { source = ["s"] }\ntargets = [{ function = "f" }]\n'
    '[[schedule]]\nname = "s"\nexpression = "rate(1 hour)"\ntargets = [{ url = "http://x/" }]\n',
}
seeds["cloudevents"] |= {"shop.orders", "Bestellung %C3%BCber 100 %E2%82%AC", "a b\"c%", "%", "%zz"}
seeds["intrinsic"] |= {"States.Format('{} and {}', $.a[0], $.s)", "States.ArrayUnique($.a)",
                       "States.Array(States.StringSplit($.s, ','), $.o)", "States.MathAdd($.n, 1)"}
seeds["jsonpath"] |= {"$", "$.a[0]", "$..c", "$.a[?(@.c > 1)]", "$$.Execution.Id", "$.o['k']"}

for target, items in seeds.items():
    folder = os.path.join(out, target)
    os.makedirs(folder, exist_ok=True)
    for i, item in enumerate(sorted(items)):
        with open(os.path.join(folder, f"seed-{i:05}"), "w") as f:
            f.write(item)
    print(f"fuzz-seeds: {target}: {len(items)} seeds")
