"""Reference data vendored into the repository (see README.md): the NCIP 2.02 schema, OCLC's sample messages,
ReShare's own action bodies. Tests find them here, relative to the repository, never outside it."""

from pathlib import Path

REFERENCE = Path(__file__).resolve().parent
NCIP = REFERENCE / "ncip"
NCIP_XSD = NCIP / "ncip_v2_02.xsd"
NCIP_SAMPLES = NCIP / "samples"
CIRCILL = NCIP_SAMPLES / "circill"
SCIM = NCIP_SAMPLES / "scim"
RESHARE_SAMPLES = REFERENCE / "reshare" / "samples"
RESHARE_ACTIONS = RESHARE_SAMPLES / "actions"
