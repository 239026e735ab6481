"""Fake French identifiers with valid check keys.

NIR (numéro d'inscription au répertoire, the INS-NIR): sex (1) | year (2) | month (2) |
département (2) | commune (3) | order (3), then the key 97 - (number mod 97). The
generated numbers use orders above 900, so they look real to software but are not
assigned to anyone (and tests must never treat them as real).
"""

from __future__ import annotations

import random

INS_SYSTEM = "urn:oid:1.2.250.1.213.1.4.8"
NIR_KEY_MODULUS = 97


def nir_key(first13: str) -> int:
    return NIR_KEY_MODULUS - int(first13) % NIR_KEY_MODULUS


def nir_is_valid(nir: str) -> bool:
    return len(nir) == 15 and nir.isdecimal() and nir_key(nir[:13]) == int(nir[13:])


def make_nir(rng: random.Random, sex: str, year: int, month: int) -> str:
    dept = rng.choice(["13", "31", "33", "35", "44", "59", "67", "69", "75", "92", "93", "94"])
    commune, order = rng.randint(1, 999), rng.randint(901, 999)
    base = f"{1 if sex == 'male' else 2}{year % 100:02d}{month:02d}{dept}{commune:03d}{order:03d}"
    return base + f"{nir_key(base):02d}"


def make_ipp(rng: random.Random, site_number: int) -> str:
    """A site's patient number (IPP): site prefix and 8 digits."""
    return f"{site_number:02d}{rng.randint(0, 99_999_999):08d}"
