"""Fuzzing every wire protocol and HTTP endpoint (issue 10, part 5).

- test_ws_edge_properties.py, test_ingress_properties.py: hypothesis properties of the parsers at the edge
  (every input is a typed message or a typed rejection; valid messages round-trip);
- test_fuzz_smoke.py: a short live run in `make test`;
- runner.py (`python -m tests.fuzz`, `make fuzz`): the long live run against a real media host and
  Function App beside a healthy call;
- test_found_bugs.py: one test per bug the fuzzer found.
"""
