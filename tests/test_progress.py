"""Live progress on long runs: a line every tenth of the cases, silent under -q."""

from __future__ import annotations

PROMPTS = "\n".join(f'  - {{label: safe, prompt: "case {i}"}}' for i in range(120))
SUITE = f"scenario: Long\nsafety: [Be safe.]\nbehavioral: [Be brief.]\nprompts:\n{PROMPTS}\n"


def test_progress_lines_and_quiet_mode(specbench_run):
    loud = specbench_run(suite=SUITE)
    loud.assert_outcomes(passed=120)
    lines = [line for line in loud.stdout.lines if line.startswith("specbench: ")]
    assert len(lines) >= 9, lines
    assert any(line.startswith("specbench: 12/120 cases") for line in lines)
    assert (
        lines[-1].startswith("specbench: 120/120 cases")
        and "tokens" in lines[-1]
        and "cases/s" in lines[-1]
        and "left" in lines[-1]
    )
    quiet = specbench_run("-q")
    assert not [line for line in quiet.stdout.lines if line.startswith("specbench: ")]
