"""Training examples made from text alone (no labels): pseudo-queries from the corpus, rewritten questions.

- ``span``: a random contiguous 30–70 % span of a document's words (the older ``--augment``).
- ``inverse_cloze``: a sentence of a document as the query, the rest of the document as its passage
  (the sentence removed most of the time, so the model must match by context, not by copied words;
  Lee et al., 2019).
- ``rewrite_query``: a training question in forms real users write and medquad's templates never show:
  question/template words dropped, two words swapped, a misspelling, an unrelated context sentence.

All are pure functions of their input and a ``random.Random``, so a seed makes them reproducible.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

# Words that carry the question's form, not its topic ("What are the symptoms of X ?"): dropping some of
# them makes a templated question look like a search query or a fragment of a message.
_TEMPLATE = (
    "what which who whom whose when where why how is are was were do does did can could should would will "
    "i me my we you your the a an of to for in on with about there any this that these those be been has "
    "have had get ?"
)
TEMPLATE_WORDS = frozenset(_TEMPLATE.split())
# The operations of ``rewrite_query`` as ``--query-aug-ops`` names them, each with its probability when on
# (for "drop": of each template word).
REWRITES: dict[str, float] = {"drop": 0.5, "swap": 0.3, "typo": 0.3, "context": 0.3}
_SENT_RE = re.compile(r"(?<=[.!?。！？])\s+|\n+")


def span(n: int, rng: random.Random, lo: float = 0.3, hi: float = 0.7) -> tuple[int, int]:
    """(start, end) of a random contiguous span of ``lo``–``hi`` of ``n`` words (at least one word)."""
    if n <= 0:
        return 0, 0
    length = rng.randint(max(1, round(lo * n)), max(1, round(hi * n)))
    start = rng.randint(0, n - length)
    return start, start + length


def sentences(text: str) -> list[str]:
    """Sentences of ``text`` (split after . ! ? and their CJK forms, and at line breaks)."""
    return [s.strip() for s in _SENT_RE.split(text) if s.strip()]


def inverse_cloze(
    text: str, rng: random.Random, keep: float = 0.1, window_words: int = 96, min_words: int = 3
) -> tuple[str, str] | None:
    """(query sentence, passage) from one document; None when it has fewer than two usable sentences.

    The sentence is drawn from the first ``window_words`` words (the part a model that reads the
    document's first words can see); with probability ``keep`` it stays in the passage, as in ICT,
    so that the model still learns that shared words count.
    """
    sents = sentences(text)
    starts, seen = [], 0
    for s in sents:
        starts.append(seen)
        seen += len(s.split())
    cands = [i for i, s in enumerate(sents) if len(s.split()) >= min_words and starts[i] < window_words]
    if len(sents) < 2 or not cands:
        return None
    i = rng.choice(cands)
    rest = sents if rng.random() < keep else sents[:i] + sents[i + 1 :]
    return sents[i], " ".join(rest)


def misspell(word: str, rng: random.Random) -> str:
    """One typo in a word of 4+ letters: a letter dropped, doubled, or two neighbours swapped; the first
    letter stays (people rarely get it wrong, and it anchors the word's first trigram)."""
    if len(word) < 4 or not word.isalpha():
        return word
    i = rng.randrange(1, len(word) - 1)
    op = rng.randrange(3)
    if op == 0:
        return word[:i] + word[i + 1 :]
    if op == 1:
        return word[:i] + word[i] + word[i:]
    return word[:i] + word[i + 1] + word[i] + word[i + 2 :]


def rewrite_probs(ops: str) -> dict[str, float]:
    """``rewrite_query``'s probability arguments for a comma-separated subset of ``REWRITES`` (the rest 0)."""
    names = [o.strip() for o in ops.split(",") if o.strip()]
    unknown = sorted(set(names) - set(REWRITES))
    if unknown or not names:
        raise ValueError(f"query rewrites must be a comma-separated subset of {', '.join(REWRITES)}; got {ops!r}")
    return {f"p_{name}": (prob if name in names else 0.0) for name, prob in REWRITES.items()}


def rewrite_query(
    query: str, rng: random.Random, context: Sequence[str] = (), p_drop: float = REWRITES["drop"],
    p_swap: float = REWRITES["swap"], p_typo: float = REWRITES["typo"], p_context: float = REWRITES["context"],
) -> str:
    """A training question rewritten as users write (see module doc); the topic words always stay.

    Each operation applies with its own probability; template words are dropped one by one with
    probability ``p_drop`` each (never all the words of the query); a context sentence (drawn from
    ``context``, e.g. other documents' sentences) goes before or after the question.

    Every random value is drawn first, the same ones whatever the probabilities (len(words) + 7 draws
    of ``rng``, a misspelling from a generator seeded by one of them): with an operation switched off
    (probability 0) the same ``rng`` gives the same rewrite less that operation and leaves ``rng`` where
    the full rewrite would, so runs that differ only in ``--query-aug-ops`` rewrite the same questions
    and sample everything else alike.
    """
    words = query.replace("?", " ?").split()
    if not words:
        return query
    u_drop = [rng.random() for _ in words]
    u_swap, f_swap, u_typo, f_typo, u_context, f_context, side = (rng.random() for _ in range(7))
    typo_rng = random.Random(rng.getrandbits(32))
    kept = [w for w, u in zip(words, u_drop, strict=True) if w.lower() not in TEMPLATE_WORDS or u >= p_drop]
    words = kept or words
    if len(words) >= 2 and u_swap < p_swap:
        i = int(f_swap * (len(words) - 1))  # a position among the words left, f uniform in [0, 1)
        words[i], words[i + 1] = words[i + 1], words[i]
    if u_typo < p_typo:
        topical = [i for i, w in enumerate(words) if w.lower() not in TEMPLATE_WORDS and len(w) >= 4]
        if topical:
            i = topical[int(f_typo * len(topical))]
            words[i] = misspell(words[i], typo_rng)
    out = " ".join(words)
    if context and u_context < p_context:
        extra = context[int(f_context * len(context))]
        out = f"{extra} {out}" if side < 0.5 else f"{out} {extra}"
    return out
