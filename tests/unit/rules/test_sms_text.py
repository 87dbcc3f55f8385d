"""SMS part arithmetic (rules/notifiers/sms_text.py) agrees with Gammu's own encoder, the oracle:
the number of parts and the encoding for GSM-7 text (extension characters included) and Urdu."""

from __future__ import annotations

import gammu
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.notifiers.sms_text import GSM7_BASIC, GSM7_EXTENSION, fit, is_gsm7, parts_needed

GSM7 = st.text(alphabet=sorted(GSM7_BASIC | GSM7_EXTENSION - {"\r"}), min_size=0, max_size=700)
URDU = st.text(alphabet="ابپتٹثجچحخدڈذرڑزژسشصضطظعغفقکگلمنوہھءیے ۔،0123456789", min_size=0, max_size=400)


def gammu_parts(text: str, unicode: bool) -> int:
    return len(gammu.EncodeSMS({"Class": -1, "Unicode": unicode,
                                "Entries": [{"ID": "ConcatenatedTextLong", "Buffer": text}]}))


@settings(max_examples=150, deadline=None)
@given(st.one_of(GSM7, URDU))
def test_parts_agree_with_gammu(text: str) -> None:
    unicode = not is_gsm7(text)
    assert parts_needed(text, unicode) == max(1, gammu_parts(text, unicode))


@settings(max_examples=100, deadline=None)
@given(st.one_of(GSM7, URDU), st.integers(min_value=1, max_value=4))
def test_fit_never_exceeds_max_parts_and_keeps_what_fits(text: str, max_parts: int) -> None:
    plan = fit(text, max_parts)
    assert plan.parts <= max_parts and max(1, gammu_parts(plan.text, plan.unicode)) == plan.parts
    if plan.cut:
        assert plan.text.endswith("…" if plan.unicode else "...")
        assert text.startswith(plan.text[:-1 if plan.unicode else -3])
    else:
        assert plan.text == text


def test_the_limits_of_one_part():
    assert fit("a" * 160, 1).parts == 1 and fit("a" * 161, 3).parts == 2
    assert fit("€" * 80, 1).parts == 1 and fit("€" * 81, 2).parts == 2  # two septets each
    assert fit("ب" * 70, 1).parts == 1 and fit("ب" * 71, 2).parts == 2
    assert fit("ب" * 71, 1) .text == "ب" * 69 + "…"
