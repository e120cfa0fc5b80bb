"""A corpus the project generates itself, so the tiny scale needs no download and no licence.

The text is materials-science-flavoured English with *learnable* structure: a fixed world of
materials (drawn from the seed) whose facts never change, restated by varied templates across many
documents. A small GPT can memorise the facts and the templates, so its loss falls well below the
unigram entropy of the token stream — which is what the scaling studies need to see.

Everything comes from one `random.Random(seed)`: the same seed gives byte-identical documents, and
`generate_documents(n, seed)` is a prefix of `generate_documents(m, seed)` for n < m.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

NUM_MATERIALS = 300

# Cations by the role they usually play, so formulas look plausible (A-site, B-site, simple binaries).
A_SITE = ["La", "Sr", "Ba", "Ca", "Nd", "Pr", "Y", "Bi", "K", "Na", "Li", "Cs", "Gd", "Sm"]
B_SITE = ["Ti", "Co", "Mn", "Fe", "Ni", "Cr", "V", "Nb", "Ta", "Zr", "Cu", "Ru", "Sc", "Mo", "W", "Ga", "Al"]
SIMPLE = [
    "Zn",
    "Ga",
    "In",
    "Sn",
    "Cd",
    "Mg",
    "Al",
    "Si",
    "Ge",
    "Ti",
    "Zr",
    "Hf",
    "Mo",
    "W",
    "Cu",
    "Ni",
    "Bi",
    "Sb",
    "Pb",
]

# anion -> (band-gap centre in eV, spread); oxides are wide-gap, tellurides narrow.
ANIONS = {
    "O": (3.6, 1.4),
    "S": (2.0, 0.9),
    "Se": (1.4, 0.7),
    "Te": (0.8, 0.5),
    "N": (2.6, 1.3),
    "F": (6.5, 1.5),
    "P": (1.2, 0.6),
}

# structure -> (crystal system, space group, lattice constant range in angstrom)
STRUCTURES = {
    "perovskite": ("cubic", "Pm-3m", (3.7, 4.2)),
    "double perovskite": ("monoclinic", "P2_1/n", (7.6, 8.2)),
    "layered perovskite": ("tetragonal", "I4/mmm", (3.7, 4.0)),
    "spinel": ("cubic", "Fd-3m", (8.0, 8.6)),
    "rutile": ("tetragonal", "P4_2/mnm", (4.3, 4.9)),
    "anatase": ("tetragonal", "I4_1/amd", (3.7, 3.9)),
    "wurtzite": ("hexagonal", "P6_3mc", (3.1, 3.8)),
    "zinc blende": ("cubic", "F-43m", (5.4, 6.5)),
    "rock-salt": ("cubic", "Fm-3m", (4.0, 6.0)),
    "fluorite": ("cubic", "Fm-3m", (5.0, 5.6)),
    "olivine": ("orthorhombic", "Pnma", (10.0, 10.5)),
    "garnet": ("cubic", "Ia-3d", (11.9, 12.6)),
    "pyrochlore": ("cubic", "Fd-3m", (10.0, 10.6)),
    "layered": ("hexagonal", "P6_3/mmc", (3.1, 3.6)),
}

# synthesis method -> temperature range in degrees Celsius
METHODS = {
    "solid-state reaction": (900, 1400),
    "sol-gel processing": (450, 800),
    "hydrothermal synthesis": (150, 250),
    "pulsed laser deposition": (550, 800),
    "chemical vapour deposition": (600, 1000),
    "molecular beam epitaxy": (400, 700),
    "spark plasma sintering": (1000, 1600),
    "ball milling followed by annealing": (500, 900),
    "flux growth": (1000, 1300),
    "co-precipitation": (300, 600),
}

APPLICATIONS = {
    "insulator": [
        "gate dielectrics",
        "thermal barrier coatings",
        "solid oxide fuel cells",
        "optical windows",
        "capacitors",
        "scintillators",
    ],
    "semiconductor": [
        "photocatalytic water splitting",
        "solar absorbers",
        "gas sensors",
        "light-emitting diodes",
        "transparent conducting electrodes",
        "photodetectors",
        "power electronics",
    ],
    "metal": [
        "thermoelectric generators",
        "battery cathodes",
        "electrocatalysis",
        "interconnects",
        "spintronic devices",
        "superconducting wires",
    ],
}

MAGNETISM = ["ferromagnetic", "antiferromagnetic", "paramagnetic", "diamagnetic", "ferrimagnetic"]
GROUPS = [
    "Tanaka",
    "Müller",
    "Okafor",
    "Larsen",
    "Novak",
    "Ibáñez",
    "Chen",
    "Kowalski",
    "Dubois",
    "Haddad",
    "Ishikawa",
    "Petrov",
    "Singh",
    "Andersson",
    "Rossi",
    "Nguyen",
    "Oliveira",
    "Schäfer",
    "Kim",
    "Walsh",
]


@dataclass(frozen=True)
class Material:
    formula: str
    structure: str
    system: str
    space_group: str
    lattice: float
    gap: float
    kind: str  # metal / semiconductor / insulator, derived from the gap so it is learnable
    method: str
    temperature: int
    application: str
    magnetism: str
    ordering_temperature: int
    density: float
    group: str
    year: int


def _formula(rng: random.Random) -> tuple[str, str]:
    anion = rng.choice(list(ANIONS))
    shape = rng.random()
    sub = lambda n: "" if n == 1 else str(n)  # noqa: E731
    if shape < 0.35:  # perovskite-like ABX3 or A1-xA'xBX3 written as two A cations
        a = rng.sample(A_SITE, rng.choice([1, 1, 2]))
        b = rng.choice(B_SITE)
        return "".join(a) + b + anion + "3", anion
    if shape < 0.5:  # A2BX4 / AB2X4
        a, b = rng.choice(A_SITE + SIMPLE), rng.choice(B_SITE)
        return (a + "2" + b if rng.random() < 0.5 else a + b + "2") + anion + "4", anion
    cation = rng.choice(SIMPLE + B_SITE)
    m, n = rng.choice([(1, 1), (1, 2), (2, 3), (1, 3), (3, 4), (2, 1)])
    return cation + sub(m) + anion + sub(n), anion


def build_world(rng: random.Random, num_materials: int = NUM_MATERIALS) -> list[Material]:
    """The fixed set of materials every document talks about; its facts never change."""
    materials, seen = [], set()
    while len(materials) < num_materials:
        formula, anion = _formula(rng)
        if formula in seen:
            continue
        seen.add(formula)
        structure = rng.choice(list(STRUCTURES))
        system, space_group, (lo, hi) = STRUCTURES[structure]
        centre, spread = ANIONS[anion]
        gap = round(max(0.0, rng.gauss(centre, spread)), 2)
        kind = "metal" if gap < 0.1 else "semiconductor" if gap < 3.0 else "insulator"
        method = rng.choice(list(METHODS))
        t_lo, t_hi = METHODS[method]
        magnetism = rng.choice(MAGNETISM)
        materials.append(
            Material(
                formula=formula,
                structure=structure,
                system=system,
                space_group=space_group,
                lattice=round(rng.uniform(lo, hi), 3),
                gap=gap,
                kind=kind,
                method=method,
                temperature=rng.randrange(t_lo, t_hi + 1, 25),
                application=rng.choice(APPLICATIONS[kind]),
                magnetism=magnetism,
                ordering_temperature=rng.randrange(20, 900, 5),
                density=round(rng.uniform(2.5, 9.5), 2),
                group=rng.choice(GROUPS),
                year=rng.randrange(1955, 2024),
            )
        )
    return materials


def _an(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


# Fact templates: each restates one or two properties; several are paraphrases of each other.
FACTS = [
    lambda m: f"{m.formula} crystallises in the {m.structure} structure with space group {m.space_group}.",
    lambda m: f"The {m.structure} phase of {m.formula} is {m.system}, with a lattice constant of {m.lattice:.3f} Å.",
    lambda m: (
        f"X-ray diffraction shows that {m.formula} adopts {_an(m.system)} {m.structure} lattice (a = {m.lattice:.3f} Å)."
    ),
    lambda m: f"The lattice parameter of {m.formula} is a = {m.lattice:.3f} Å.",
    lambda m: f"{m.formula} has a band gap of {m.gap:.2f} eV, which makes it {_an(m.kind)}.",
    lambda m: f"With a band gap of {m.gap:.2f} eV, {m.formula} behaves as {_an(m.kind)}.",
    lambda m: f"Optical absorption measurements give a band gap of {m.gap:.2f} eV for {m.formula}.",
    lambda m: f"{m.formula} is usually prepared by {m.method} at {m.temperature} °C.",
    lambda m: f"Samples of {m.formula} were obtained by {m.method}, with a final anneal at {m.temperature} °C.",
    lambda m: f"The main application of {m.formula} is in {m.application}.",
    lambda m: f"Because it is {_an(m.kind)}, {m.formula} is studied for {m.application}.",
    lambda m: (
        f"{m.formula} is {m.magnetism} below {m.ordering_temperature} K."
        if m.magnetism not in ("paramagnetic", "diamagnetic")
        else f"{m.formula} is {m.magnetism} at all temperatures measured."
    ),
    lambda m: f"The density of {m.formula} is {m.density:.2f} g/cm3.",
    lambda m: f"{m.formula} was first reported by the {m.group} group in {m.year}.",
    lambda m: f"Since the {m.group} group reported it in {m.year}, {m.formula} has been made mostly by {m.method}.",
    lambda m: f"Its {m.system} {m.structure} structure gives {m.formula} a density of {m.density:.2f} g/cm3.",
]

OPENERS = [
    "In this note we summarise what is known about {names}.",
    "This report collects measurements on {names}.",
    "Recent interest in {application} has renewed attention to {names}.",
    "We review the structure, electronic properties and synthesis of {names}.",
    "Several groups have revisited {names} in the last few years.",
]

TRANSITIONS = [
    "We now turn to {formula}.",
    "The second compound, {formula}, is better known.",
    "Less has been written about {formula}.",
    "{formula} is a useful point of comparison.",
]

CLOSERS = [
    "These results are consistent with earlier reports.",
    "Further work is needed to understand the defect chemistry.",
    "The data above were reproduced in at least two laboratories.",
    "Thin films and single crystals give the same values within experimental error.",
    "Doping studies are under way.",
    "Open questions remain about the surface stability in humid air.",
    "First-principles calculations agree with these measurements.",
]

TITLES = [
    "Structure and properties of {a}",
    "{a}: synthesis and characterisation",
    "Notes on {a} for {application}",
    "A comparative study of {a} and {b}",
    "Band gaps of {a} and {b}",
    "{a}, {b} and {c}: a short review",
]


def _compare(m: Material, other: Material) -> str:
    """A sentence whose content follows from the two materials' facts (a learnable relation)."""
    if m.structure == other.structure:
        return f"Both {m.formula} and {other.formula} adopt the {m.structure} structure."
    if m.gap == other.gap:
        return f"{m.formula} and {other.formula} have the same band gap of {m.gap:.2f} eV."
    wider = "wider" if m.gap > other.gap else "narrower"
    return (
        f"Compared with {other.formula}, {m.formula} has a {wider} band gap ({m.gap:.2f} eV versus {other.gap:.2f} eV)."
    )


def _document(rng: random.Random, world: list[Material], weights: list[float]) -> str:
    count = rng.choices([1, 2, 3], weights=[5, 4, 2])[0]
    picked: list[Material] = []
    while len(picked) < count:  # popular materials recur often, so their facts are learnable
        m = rng.choices(world, weights=weights)[0]
        if m not in picked:
            picked.append(m)
    names = [m.formula for m in picked]
    joined = names[0] if count == 1 else ", ".join(names[:-1]) + " and " + names[-1]

    title_choices = [t for t in TITLES if t.count("{") - t.count("{application}") == count]
    title = rng.choice(title_choices).format(
        a=names[0], b=names[-1] if count > 1 else "", c=names[-1], application=picked[0].application
    )
    paragraphs = [title, rng.choice(OPENERS).format(names=joined, application=picked[0].application)]
    low, high = {1: (7, 12), 2: (5, 9), 3: (4, 7)}[count]
    for i, m in enumerate(picked):
        sentences = [fact(m) for fact in rng.sample(FACTS, rng.randint(low, high))]
        if i > 0:
            sentences.insert(0, rng.choice(TRANSITIONS).format(formula=m.formula))
        paragraphs.append(" ".join(sentences))
    if count > 1:
        paragraphs.append(" ".join(_compare(a, b) for a, b in zip(picked, picked[1:])))
    paragraphs.append(rng.choice(CLOSERS))
    return "\n\n".join(paragraphs)


def generate_documents(num_documents: int, seed: int) -> list[str]:
    """`num_documents` documents about one seeded world; same seed, same bytes."""
    rng = random.Random(seed)
    world = build_world(rng)
    weights = [1.0 / (rank + 10) for rank in range(len(world))]  # Zipf-like popularity
    return [_document(rng, world, weights) for _ in range(num_documents)]
