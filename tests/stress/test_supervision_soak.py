"""Opt-in: the issue's 10-minute soak of restarts, one instance killed every 10 s
under on-failure.

Run with:  .venv/bin/python -m pytest tests/stress/test_supervision_soak.py -p no:cacheprovider -s
"""
import pytest

import supervision_soak


@pytest.mark.stress
@pytest.mark.timeout(900)
def test_ten_minutes_of_a_pipeline_with_an_instance_killed_every_ten_seconds():
    result = supervision_soak.run(seconds=600, kill_every=10.0)
    print(f"{result['kills']} kills; shm {result['shm']}; fds {result['fds']}; "
          f"RssAnon KiB {result['anon_kib']}")
    supervision_soak.check(result, memory_slack_kib=16 * 1024)
