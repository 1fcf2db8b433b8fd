"""The benchmark harness still works: a tiny run against the memory gateway, structure only.

No speed is asserted (CI machines are shared and noisy); the point is that ``make bench``
keeps working as the gateway changes. Uses the Python load generator, so wrk is not needed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import compare, procs
from bench.client import seed_groups, seed_users
from bench.report import console_table, evaluate_targets, markdown, write_results
from bench.scenarios import HOT_PATHS, Target, lua
from bench.sections import Context, Profile, measure, summarise
from bench.servers import launch

REQUESTS = {"filter_hit": 200}  # the other scenarios: 40 requests each


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    server_cpus, load_cpus = procs.core_plan()
    profile = Profile(name="smoke", reps=1, duration_s=0, concurrencies=(4,))
    return Context(profile=profile, out=tmp_path / "out", work=tmp_path / "work", server_cpus=server_cpus,
                   load_cpus=load_cpus, generator="python")


def test_harness_measures_the_memory_gateway(ctx: Context) -> None:
    server = launch.start_gateway("gateway", ctx.logs, ctx.server_cpus)
    try:
        ids = seed_users(server.url, server.token, server.base, [f"bench.user{i}@example.com" for i in range(20)])
        groups = seed_groups(server.url, server.token, server.base, ["smoke group 0", "smoke group 1"])
        target = Target(base=server.base, token=server.token, hit_count=20, user_ids=ids[:10],
                        active_ids=ids[10:], group_ids=groups, tag="smoke")
        rows = []
        for scenario in HOT_PATHS:
            row = measure(ctx, server, scenario, target, 4, 0, max_requests=REQUESTS.get(scenario, 40))
            row["rep"] = 0
            rows.append(row)
    finally:
        procs.stop_all()

    for row in rows:
        assert row["requests"] == REQUESTS.get(row["scenario"], 40), row
        assert sum(row["errors"].values()) == 0, row  # every request answered 2xx
        assert row["rps"] > 0 and 0 < row["p50_ms"] <= row["p99_ms"] <= row["max_ms"], row
        assert {"server_cpu_us_per_req", "foreign_cpu_pct", "generator"} <= set(row)

    summary = summarise(rows, ctx.profile)
    assert [s["scenario"] for s in summary] == list(HOT_PATHS)
    assert all(s["gateway"]["runs"] == 1 for s in summary)
    results = {
        "schema": 1, "mode": "smoke", "command": "pytest", "started": "2000-01-01T00:00:00+00:00",
        "duration_s": 1.0, "profile": {"reps": 1, "duration_s": 0.0}, "notes": ["smoke"],
        "machine": {"cores": 2, "cpu_model": "?", "memory_gb": 1, "python": "3", "aiohttp": "3", "uvloop": "0",
                    "generator": "python", "server_cores": "0", "load_cores": "1", "loadavg_start": "0",
                    "loadavg_end": "0"},
        "hot_paths": {"runs": rows, "summary": summary, "preflight": {}},
    }
    results["targets"] = evaluate_targets(results)
    assert any(t["id"] == "rps:filter_hit" for t in results["targets"])
    paths = write_results(results, ctx.out)
    saved = json.loads(Path(paths["json"]).read_text())
    assert saved["hot_paths"]["summary"][0]["scenario"] == "filter_hit"
    assert "| scenario | c | gateway req/s" in markdown(saved)
    assert "POST /Users" in console_table(saved)


def test_wrk_scripts_render_for_every_scenario() -> None:
    target = Target(base="/scim/v2", token="t", hit_count=3, user_ids=["a", "b"], active_ids=["c"],
                    group_ids=["g"], tag="x")
    for scenario in (*HOT_PATHS, "backend_get"):
        script = lua(scenario, target)
        assert "request = function()" in script and "BENCHJSON" in script


def test_bare_proxy_forwards_to_the_mock(ctx: Context) -> None:
    """The backend section's stack baseline answers what the mock answers."""
    mock = launch.start_mock("mock", ctx.logs, ctx.load_cpus)
    try:
        proxy = launch.start_bare_proxy("bare-proxy", ctx.logs, ctx.server_cpus, mock)
        gateway = launch.start_gateway("gateway-cleanmail", ctx.logs, ctx.server_cpus, backend="cleanmail",
                                       state="memory", mock_url=mock.url)
        seed_users(gateway.url, gateway.token, gateway.base, [f"bench.user{i}@example.com" for i in range(5)])
        target = Target(base="/api/v1", token="", api_key=launch.MOCK_KEY, hit_name_fmt="bench.user{}@example.com",
                        hit_count=5, tag="proxy")
        row = measure(ctx, proxy, "backend_get", target, 2, 0, max_requests=40)
    finally:
        procs.stop_all()
    assert row["requests"] == 40 and sum(row["errors"].values()) == 0, row


def test_default_configuration_section_runs_and_says_what_it_left_out(
        ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default-configuration section: the untuned gateway and bare aiohttp measured, a peer that
    cannot be installed left out with its reason (never a made-up figure), the access log counted."""
    import dataclasses

    from bench import default_config, peers

    monkeypatch.setattr(peers, "install_scimgateway", lambda: "scimgateway source not found (test)")
    monkeypatch.setattr(launch, "peer_available", lambda: False)
    ctx.profile = dataclasses.replace(ctx.profile, hot_users=20, active_pool=10, groups_per_run=2, warmup_s=1,
                                      default_duration_s=1)
    try:
        section = default_config.default_config(ctx)
    finally:
        procs.stop_all()
    assert section["servers"].keys() == {"gateway", "bare"}
    assert section["skipped"]["scimgateway"] == "scimgateway source not found (test)"
    assert "scim2-server" in section["skipped"]["peer"]
    assert {r["scenario"] for r in section["runs"] if r["server"] == "gateway"} == set(default_config.SCENARIOS)
    assert all(sum(r["errors"].values()) == 0 for r in section["runs"]), section["runs"]
    log = section["access_log"]
    assert log["lines"] >= log["requests"] > 0
    by_id = {t["id"]: t for t in section["targets"]}
    left_out = by_id["default:filter_hit:c4:over_scimgateway"]
    assert left_out["met"] is None and left_out["measured"] == "—" and "not found" in left_out["note"]
    assert by_id["default:filter_hit:c4:cpu"]["met"] in (True, False)
    text = "\n".join(default_config.markdown(section, {}))
    assert "scimgateway 6.1.18 not measured:** scimgateway source not found (test)" in text


def test_sections_may_write_into_a_results_folder_that_did_not_exist(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--out` naming a new folder: a section writing its own file there (as postfixadmin's does) found no
    folder, and the run failed."""
    from bench import run

    def writes_its_own_file(ctx: Context) -> dict[str, object]:
        (ctx.out / "own.md").write_text("written by the section\n")
        return {"written": True}

    monkeypatch.setattr(run, "RUNNERS", (("default", "own_file", writes_its_own_file),))
    out = tmp_path / "new" / "results"
    assert run.main(["--quick", "--only", "default", "--out", str(out), "--generator", "python"]) == 0
    assert (out / "own.md").read_text() == "written by the section\n"
    assert (out / "latest.json").exists()


def test_compare_runs_a_commit_beside_the_working_tree(ctx: Context, tmp_path: Path) -> None:
    base = compare.export("HEAD", tmp_path / "base")
    assert (base / "gateway" / "cli.py").is_file()
    ctx.logs.mkdir(parents=True)
    ctx.profile = Profile(name="smoke", reps=1, duration_s=1, concurrencies=(4,), hot_users=20, active_pool=10,
                          groups_per_run=2)
    table = compare.cpu_table(ctx, {"base": base, "now": compare.REPO}, ["filter_hit"])
    cells = table[("filter_hit", 4)]
    assert set(cells) == {"base", "now"} and all(cpu > 0 for cpu in cells.values())
    assert "| 4 |" in compare.render(table, "HEAD", "CPU µs")


def test_results_name_their_files_relative_to_the_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bench import report

    monkeypatch.setattr(report, "REPO", tmp_path)
    assert report.portable(str(tmp_path / "bench" / "results" / "latest.json")) == "bench/results/latest.json"
    assert report.portable("/elsewhere/latest.json") == "/elsewhere/latest.json"
    committed = json.loads((Path(__file__).resolve().parents[2] / "bench" / "results" / "latest.json").read_text())
    assert all(not Path(path).is_absolute() for path in committed["files"].values())
