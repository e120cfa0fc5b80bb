"""Chemical formulas -> element amounts, element-fraction vectors and text for a language model.

Why our own parser: Matbench's compositions (`Ag(AuS)2`, `Ag0.5Ge1Pb1.75S4`) need only nested
parentheses and fractional amounts; pymatgen/matminer are not dependencies. An unparsable formula
raises `ScaleDAGError`, which the band-gap stage counts and skips.
"""

from __future__ import annotations

import re

import numpy as np

from workflow.errors import ScaleDAGError

# Z = 1..103, symbol and name (IUPAC), in order.
_ELEMENTS = """H Hydrogen|He Helium|Li Lithium|Be Beryllium|B Boron|C Carbon|N Nitrogen|O Oxygen|F Fluorine|Ne Neon|
Na Sodium|Mg Magnesium|Al Aluminium|Si Silicon|P Phosphorus|S Sulfur|Cl Chlorine|Ar Argon|K Potassium|Ca Calcium|
Sc Scandium|Ti Titanium|V Vanadium|Cr Chromium|Mn Manganese|Fe Iron|Co Cobalt|Ni Nickel|Cu Copper|Zn Zinc|
Ga Gallium|Ge Germanium|As Arsenic|Se Selenium|Br Bromine|Kr Krypton|Rb Rubidium|Sr Strontium|Y Yttrium|
Zr Zirconium|Nb Niobium|Mo Molybdenum|Tc Technetium|Ru Ruthenium|Rh Rhodium|Pd Palladium|Ag Silver|Cd Cadmium|
In Indium|Sn Tin|Sb Antimony|Te Tellurium|I Iodine|Xe Xenon|Cs Caesium|Ba Barium|La Lanthanum|Ce Cerium|
Pr Praseodymium|Nd Neodymium|Pm Promethium|Sm Samarium|Eu Europium|Gd Gadolinium|Tb Terbium|Dy Dysprosium|
Ho Holmium|Er Erbium|Tm Thulium|Yb Ytterbium|Lu Lutetium|Hf Hafnium|Ta Tantalum|W Tungsten|Re Rhenium|
Os Osmium|Ir Iridium|Pt Platinum|Au Gold|Hg Mercury|Tl Thallium|Pb Lead|Bi Bismuth|Po Polonium|At Astatine|
Rn Radon|Fr Francium|Ra Radium|Ac Actinium|Th Thorium|Pa Protactinium|U Uranium|Np Neptunium|Pu Plutonium|
Am Americium|Cm Curium|Bk Berkelium|Cf Californium|Es Einsteinium|Fm Fermium|Md Mendelevium|No Nobelium|
Lr Lawrencium"""
ELEMENTS: dict[str, str] = dict(e.split() for e in _ELEMENTS.replace("\n", "").split("|"))
SYMBOLS = list(ELEMENTS)
_INDEX = {s: i for i, s in enumerate(SYMBOLS)}
_TOKEN = re.compile(r"([A-Z][a-z]?)|(\()|(\))|(\d+(?:\.\d+)?|\.\d+)|(\s+)")


def parse_formula(formula: str) -> dict[str, float]:
    """Element -> amount, e.g. 'Ag(AuS)2' -> {'Ag': 1, 'Au': 2, 'S': 2}; ScaleDAGError if unparsable."""
    if not isinstance(formula, str) or not formula.strip():
        raise ScaleDAGError(f"composition {formula!r}: empty")
    stack: list[dict[str, float]] = [{}]
    pos, last = 0, None  # last: the element or group an amount would multiply
    while pos < len(formula):
        m = _TOKEN.match(formula, pos)
        if not m:
            raise ScaleDAGError(f"composition {formula!r}: unexpected {formula[pos]!r} at position {pos}")
        sym, open_, close, num, _space = m.groups()
        pos = m.end()
        if sym:
            if sym not in _INDEX:
                raise ScaleDAGError(f"composition {formula!r}: unknown element {sym!r}")
            stack[-1][sym] = stack[-1].get(sym, 0.0) + 1.0
            last = ("el", sym)
        elif open_:
            stack.append({})
            last = None
        elif close:
            if len(stack) == 1:
                raise ScaleDAGError(f"composition {formula!r}: unbalanced ')'")
            group = stack.pop()
            for el, n in group.items():
                stack[-1][el] = stack[-1].get(el, 0.0) + n
            last = ("group", group)
        elif num:
            if last is None:
                raise ScaleDAGError(f"composition {formula!r}: amount {num} follows no element or group")
            factor = float(num)
            if last[0] == "el":
                stack[-1][last[1]] += factor - 1.0
            else:
                for el, n in last[1].items():
                    stack[-1][el] += n * (factor - 1.0)
            last = None
    if len(stack) != 1:
        raise ScaleDAGError(f"composition {formula!r}: unbalanced '('")
    amounts = {el: n for el, n in stack[0].items() if n > 0}
    if not amounts:
        raise ScaleDAGError(f"composition {formula!r}: no element with a positive amount")
    return amounts


def fraction_vector(amounts: dict[str, float]) -> np.ndarray:
    """Element fractions over Z = 1..103 (the composition baseline's features)."""
    v = np.zeros(len(SYMBOLS), dtype=np.float64)
    total = sum(amounts.values())
    for el, n in amounts.items():
        v[_INDEX[el]] = n / total
    return v


def _amount(n: float) -> str:
    return f"{n:g}"


def composition_text(formula: str) -> str:
    """The composition written out as the model reads it: the formula itself."""
    return formula.strip()


def description_text(formula: str, amounts: dict[str, float]) -> str:
    """A short templated description naming the elements (MatGPT-style text input)."""
    parts = [f"{_amount(n)} {ELEMENTS[el].lower()}" for el, n in amounts.items()]
    names = ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]
    return f"The material {formula.strip()} is a compound of {names}."
