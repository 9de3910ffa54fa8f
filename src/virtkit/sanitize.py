"""Make guest-controlled text safe for an operator's terminal or log.

Titles, file names and kernel arguments come from the guest.  Escape
sequences in them must never reach the terminal (a title could otherwise
rewrite the screen, set the window title or, on some terminals, inject
input).  :func:`sanitize_text` replaces every C0/C1 control character, DEL,
lone surrogates (undecodable bytes) and bidirectional overrides with a
visible escape such as ``\\x1b`` or ``\\u202e``.
"""

from __future__ import annotations

__all__ = ["sanitize_text"]

# Unicode bidi controls that reorder how text is displayed (Trojan Source).
_BIDI = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _escape(ch: str) -> str:
    o = ord(ch)
    if 0xDC80 <= o <= 0xDCFF:  # surrogateescape'd byte
        return f"\\x{o - 0xDC00:02x}"
    if o < 0x100:
        return f"\\x{o:02x}"
    return f"\\u{o:04x}"


def sanitize_text(text: str, *, keep_newlines: bool = False) -> str:
    """Return ``text`` with anything a terminal could interpret made visible.

    Args:
        text: guest-controlled text.
        keep_newlines: leave ``\\n`` alone (multi-line bodies shown in an editor).

    Returns:
        printable text; printable input is returned unchanged.
    """
    out: list[str] | None = None
    for i, ch in enumerate(text):
        o = ord(ch)
        bad = o < 0x20 or 0x7F <= o < 0xA0 or 0xD800 <= o <= 0xDFFF or ch in _BIDI
        if bad and keep_newlines and ch == "\n":
            bad = False
        if bad:
            if out is None:
                out = list(text[:i])
            out.append(_escape(ch))
        elif out is not None:
            out.append(ch)
    return text if out is None else "".join(out)
