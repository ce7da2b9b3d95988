"""Suite-wide rules: with RTMS_FAIL_ON_SKIP=1 (as in CI) a skipped test fails the run."""

import os


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("RTMS_FAIL_ON_SKIP") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if skipped and session.exitstatus == 0:
        reporter.write_line(f"{skipped} test(s) skipped: CI counts skips as failures", red=True)
        session.exitstatus = 1
