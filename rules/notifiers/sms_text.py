"""How much text an SMS holds (3GPP TS 23.038 / 23.040), pure arithmetic:

- GSM-7 (the default alphabet): 160 septets in one part; concatenated parts carry a 6-octet header
  and 153 septets each. Characters of the extension table (`^{}\\[~]|€` and form feed) take two
  septets and are never split across parts.
- Anything outside GSM-7 (Urdu) is sent as UCS-2: 70 UTF-16 units in one part, 67 a part when
  concatenated.

`fit(text, max_parts)` cuts a message to at most `max_parts` parts (marking the cut) and says how it
will be encoded and in how many parts; Gammu's own encoder agrees (tests/unit/rules/test_sms_text.py).
"""

from __future__ import annotations

from dataclasses import dataclass

GSM7_BASIC = frozenset("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                       "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")
GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67


@dataclass(frozen=True, slots=True)
class SmsPlan:
    text: str
    """The text that will be sent (cut and marked when it did not fit `max_parts`)."""
    unicode: bool
    """True: UCS-2 (70 a part); False: GSM-7 (160 a part)."""
    parts: int
    cut: bool


def is_gsm7(text: str) -> bool:
    return all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text)


def _units(char: str, unicode: bool) -> int:
    if unicode:
        return 2 if ord(char) > 0xFFFF else 1  # a UTF-16 surrogate pair
    return 2 if char in GSM7_EXTENSION else 1


def parts_needed(text: str, unicode: bool) -> int:
    """How many parts `text` takes in its encoding (characters never split across parts)."""
    single, per_part = (UCS2_SINGLE, UCS2_PART) if unicode else (GSM7_SINGLE, GSM7_PART)
    total = sum(_units(c, unicode) for c in text)
    if total <= single:
        return 1
    parts, used = 1, 0
    for char in text:
        units = _units(char, unicode)
        if used + units > per_part:
            parts, used = parts + 1, 0
        used += units
    return parts


def fit(text: str, max_parts: int) -> SmsPlan:
    """`text` as it will be sent in at most `max_parts` parts; cut (ending in an ellipsis) if longer."""
    if max_parts < 1:
        raise ValueError(f"max_parts must be at least 1, not {max_parts}")
    unicode = not is_gsm7(text)
    if parts_needed(text, unicode) <= max_parts:
        return SmsPlan(text, unicode, parts_needed(text, unicode), False)
    mark = "…" if unicode else "..."
    keep = len(text)
    # Shrink until the marked text fits: at most one pass over the text's length.
    while keep > 0 and parts_needed(text[:keep] + mark, unicode) > max_parts:
        keep -= max(1, (keep - (max_parts * (UCS2_PART if unicode else GSM7_PART))) // 2)
    cut = text[:max(keep, 0)] + mark
    return SmsPlan(cut, unicode, parts_needed(cut, unicode), True)
