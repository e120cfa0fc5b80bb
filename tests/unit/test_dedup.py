import random

from workflow.data.dedup import NearDuplicateIndex, dedup_key, shingle_hashes

WORDS = (
    "oxide film band gap lattice strain phonon magnon spin orbit coupling dopant vacancy grain "
    "boundary anneal sputter epitaxy substrate interface carrier mobility exciton polaron"
).split()


def essay(seed: int, n: int = 150) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) + str(rng.randrange(50)) for _ in range(n))


def test_dedup_key_ignores_case_and_whitespace():
    assert dedup_key("Hello  World\n") == dedup_key("hello world")
    assert dedup_key("hello world") != dedup_key("hello worlds")


def test_shingle_hashes_are_distinct_and_deterministic():
    h = shingle_hashes("a b c d e f a b c d e", 5)
    assert len(h) == len(set(h.tolist())) == 6  # "a b c d e" occurs twice, counted once
    assert (shingle_hashes("A b C d e", 5) == shingle_hashes("a b c d e", 5)).all()
    assert len(shingle_hashes("too short", 5)) == 1
    assert len(shingle_hashes("", 5)) == 0


def test_planted_near_duplicates_are_found_and_distinct_documents_kept():
    rng = random.Random(0)
    originals = [essay(i) for i in range(200)]
    planted = []
    for i in range(0, 200, 10):  # one changed word in 150, or a sentence appended
        words = originals[i].split()
        words[rng.randrange(len(words))] = "CHANGED"
        planted.append(" ".join(words))
        planted.append(originals[i + 1] + " (see the supplementary material).")
    index = NearDuplicateIndex(threshold=0.8, num_perm=128, shingle_size=5)
    assert [index.is_duplicate(t) for t in originals] == [False] * 200
    assert all(index.is_duplicate(t) for t in planted)
    assert len(index) == 200


def test_threshold_decides_what_counts_as_near():
    a = essay(1)
    words = a.split()
    b = " ".join(words[:75] + [w.upper() + "x" for w in words[75:]])  # half the text differs
    strict, loose = NearDuplicateIndex(threshold=0.9), NearDuplicateIndex(threshold=0.3)
    for index in (strict, loose):
        index.is_duplicate(a)
    assert not strict.is_duplicate(b)
    assert loose.is_duplicate(b)
