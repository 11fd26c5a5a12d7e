"""A short soak of restarts in the default run (the 10-minute one is in tests/stress)."""
import pytest

import supervision_soak


@pytest.mark.timeout(120)
def test_a_pipeline_loses_nothing_while_one_instance_is_killed_every_second():
    result = supervision_soak.run(seconds=8, kill_every=1.0)
    print(f"{result['kills']} kills, death -> ready: "
          f"{', '.join(f'{t * 1000:.0f}' for t in result['timings'])} ms")
    supervision_soak.check(result, memory_slack_kib=8 * 1024)
