"""Hardened XML reading for what WMS (or anyone else) sends us.

Two gates: the raw bytes are refused if they carry a ``<!DOCTYPE`` or ``<!ENTITY`` declaration (checked
*before* any parser sees them, so nothing is ever expanded or fetched), then lxml parses with entity
resolution, DTD loading and network access off and its size limits on.

Element lookups go by local name so that namespace prefixes do not matter (``ns1:``, ``ncip:``, a default
namespace): by default an element matches in the NCIP namespace or in no namespace; ``lenient=True`` matches
any namespace (for peers that get the namespace wrong).
"""

from __future__ import annotations

import re
from typing import Any

from lxml import etree

from illbridge.errors import BadInput, UnsafeXml

NCIP_NS = "http://www.niso.org/2008/ncip"
MAX_XML_BYTES = 2 * 1024 * 1024  # an NCIP answer is a few KiB; anything near this is not one

# A declaration that could define entities or pull in a DTD, in any case, with any blanks after "<!".
_DECLARATION = re.compile(rb"<!\s*(?:DOCTYPE|ENTITY|ELEMENT|ATTLIST|NOTATION)", re.IGNORECASE)


class MalformedXml(BadInput):
    """Bytes that are not well-formed XML (or not XML at all)."""


def refuse_unsafe(data: bytes) -> None:
    """Raise ``UnsafeXml`` if ``data`` declares a DTD or entities; never parses anything.

    NUL bytes are dropped before the scan so that UTF-16 and UTF-32 texts are caught too.
    """
    scan = data.replace(b"\x00", b"") if b"\x00" in data else data
    match = _DECLARATION.search(scan)
    if match:
        kind = match.group(0).decode("ascii", "replace").replace(" ", "")
        raise UnsafeXml(f"XML refused: it contains a {kind} declaration (DTDs and entities are not accepted)")


def _parser() -> etree.XMLParser:
    # A new parser per call: lxml parser objects must not be shared between threads.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=True,
        remove_comments=True,
        remove_pis=True,
    )


def parse_xml(data: bytes | str, *, max_bytes: int = MAX_XML_BYTES) -> etree._Element:
    """Parse untrusted XML into its root element.

    Raises ``UnsafeXml`` for DTDs, entity declarations and oversized input, ``MalformedXml`` for anything
    that is not well-formed XML.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    if len(raw) > max_bytes:
        raise UnsafeXml(f"XML refused: {len(raw)} bytes is more than the {max_bytes} accepted")
    refuse_unsafe(raw)
    if not raw.strip():
        raise MalformedXml("empty body where XML was expected")
    try:
        root = etree.fromstring(raw, parser=_parser())
    except etree.XMLSyntaxError as exc:
        raise MalformedXml(f"not well-formed XML: {exc}") from exc
    except ValueError as exc:  # e.g. a str with an encoding declaration
        raise MalformedXml(f"unreadable XML: {exc}") from exc
    if root is None:
        raise MalformedXml("no root element")
    docinfo: Any = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:  # belt and braces: the scan should have caught it
        raise UnsafeXml("XML refused: it has a document type declaration")
    return root


# --- lookups by local name ------------------------------------------------------------------------------


def local_name(element: etree._Element) -> str:
    return etree.QName(element).localname


def _matches(element: etree._Element, name: str, lenient: bool) -> bool:
    if not isinstance(element.tag, str):  # comments and processing instructions
        return False
    qname = etree.QName(element)
    if qname.localname != name:
        return False
    return lenient or qname.namespace in (NCIP_NS, None)


def children(element: etree._Element, name: str, *, lenient: bool = False) -> list[etree._Element]:
    """The direct children of ``element`` called ``name``."""
    return [child for child in element if _matches(child, name, lenient)]


def find(element: etree._Element | None, *path: str, lenient: bool = False) -> etree._Element | None:
    """The first element reached by following ``path`` (local names) down from ``element``, or None."""
    current = element
    for name in path:
        if current is None:
            return None
        found = children(current, name, lenient=lenient)
        current = found[0] if found else None
    return current


def text(element: etree._Element | None, *path: str, lenient: bool = False) -> str | None:
    """The stripped text of the element at ``path``; None when it is missing or blank."""
    target = find(element, *path, lenient=lenient)
    if target is None or target.text is None:
        return None
    value = target.text.strip()
    return value or None


def attribute(element: etree._Element | None, name: str, *, lenient: bool = True) -> str | None:
    """An attribute by local name: NCIP-qualified (``ncip:Scheme``) first, then unqualified, then (lenient)
    any namespace."""
    if element is None:
        return None
    for key in (f"{{{NCIP_NS}}}{name}", name):
        if key in element.attrib:
            return str(element.attrib[key])
    if lenient:
        for attr_key, attr_value in element.attrib.items():
            if etree.QName(attr_key).localname == name:
                return str(attr_value)
    return None
