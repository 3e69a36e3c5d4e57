"""`--format junit`: JUnit XML, which every CI system can show as a test report.

One testsuite per binary and one testcase per rule, so a CI dashboard tracks each rule of
each binary over time. A rule broken at error level is a <failure>; at warning or note level
it passes with the finding in <system-out> (JUnit has no warnings, and a warning must not
fail the build); a rule the policy does not enable is <skipped>. An input that could not be
read is a testsuite with one <error>.

XML 1.0 cannot hold most control characters nor a byte that is not UTF-8 (XML 1.0 §2.2,
production [2] Char), so every attribute and text is written visibly escaped
(docs/output-encoding.md): the report is always well-formed.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from scratchprobe.check.engine import BinaryCheck, CheckResult, RuleOutcome, Status
from scratchprobe.check.formats import FormatOptions, relative_path
from scratchprobe.check.rules import Severity
from scratchprobe.discover import InputProblem
from scratchprobe.render.names import visible_text


def _xml_safe(root: ET.Element) -> None:
    """Escape what XML 1.0 cannot hold in every text and attribute; TAB, LF and CR are
    characters of XML and stay (ElementTree writes them in attributes as references)."""
    for element in root.iter():
        if element.text is not None:
            element.text = visible_text(element.text, keep="\t\n\r")
        for key, value in element.attrib.items():
            element.attrib[key] = visible_text(value, keep="\t\n\r")


def _testcase(suite: ET.Element, name: str, outcome: RuleOutcome) -> tuple[bool, bool]:
    """Append one testcase; returns (failed, skipped)."""
    rule = outcome.rule
    case = ET.SubElement(suite, "testcase", {"classname": name, "name": f"{rule.code} {rule.name}"})
    if outcome.status is Status.SKIPPED:
        ET.SubElement(case, "skipped", {"message": outcome.skip_reason or "not enabled"})
        return False, True
    if outcome.status is Status.PASSED:
        return False, False
    details = "\n".join(f.message for f in outcome.findings)
    if outcome.severity is Severity.ERROR:
        failure = ET.SubElement(
            case,
            "failure",
            {"message": f"{rule.title}: {outcome.findings[0].message}", "type": rule.code},
        )
        failure.text = f"{details}\n\nFix: {rule.fix}\nSee {rule.help_uri}\n"
        return True, False
    out = ET.SubElement(case, "system-out")
    out.text = f"{outcome.severity.value}: {rule.title}\n{details}\nFix: {rule.fix}\n"
    return False, False


def _suite(root: ET.Element, check: BinaryCheck, options: FormatOptions) -> tuple[int, int, int]:
    name = relative_path(check.file, options.base_dir)
    suite = ET.SubElement(root, "testsuite", {"name": name})
    failures = skipped = 0
    for outcome in check.outcomes:
        failed, skip = _testcase(suite, name, outcome)
        failures += failed
        skipped += skip
    tests = len(check.outcomes)
    suite.attrib.update(tests=str(tests), failures=str(failures), errors="0", skipped=str(skipped))
    return tests, failures, skipped


def _problem_suite(root: ET.Element, problem: InputProblem) -> None:
    suite = ET.SubElement(
        root,
        "testsuite",
        {"name": problem.path, "tests": "1", "failures": "0", "errors": "1", "skipped": "0"},
    )
    case = ET.SubElement(suite, "testcase", {"classname": problem.path, "name": "read input"})
    error = ET.SubElement(case, "error", {"message": problem.message, "type": "input"})
    error.text = f"{problem.path}: {problem.message}\n"


def render(result: CheckResult, options: FormatOptions) -> str:
    root = ET.Element("testsuites", {"name": "scratchprobe check"})
    tests = failures = skipped = 0
    for check in result.binaries:
        t, f, s = _suite(root, check, options)
        tests, failures, skipped = tests + t, failures + f, skipped + s
    for problem in result.problems:
        _problem_suite(root, problem)
    root.attrib.update(
        tests=str(tests + len(result.problems)),
        failures=str(failures),
        errors=str(len(result.problems)),
        skipped=str(skipped),
    )
    _xml_safe(root)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
