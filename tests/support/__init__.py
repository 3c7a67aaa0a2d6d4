"""What the tests share, apart from fixtures (tests/conftest.py) and data (tests/fixtures/).

- Stand-ins for remote services, strict as the service is: `realtime_server` (with `realtime_events`,
  `realtime_responses`, `realtime_wire`), `openai_server`, `jwks_server`, `cosmos_server`,
  `audiocodes_client` (VAIC), `fault_proxy` (an upstream that fails).
- Harnesses that run our code in the test's loop: `media_harness`, `realtime_harness`, `functions_harness`
  (with `functions_index`), `scripted_engines`, `scenario_tools`, `cdp` (a headless browser).
- Static models checked by tests: `docker_build`, `media_image`, `media_imports`.
- `log_audit` (what logs must never hold) and `waits`.
"""
