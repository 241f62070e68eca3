"""Instruction-conditioned compliant answers for the demo model's harmless training data.

Alpaca's outputs are not available offline, so the demo model learns to answer from answers we
generate: the instruction is parsed into an intent (list, explanation, creative piece, rewrite,
classification, arithmetic, short question), a topic (the instruction minus its leading verb
phrase), an optional payload (text after a colon or in quotes) and a domain (health, technology,
...), and the answer is built from phrase banks filled with those parts. The answers are
plausible in form and on topic, not factual: they exist to make "comply" a learnable behaviour
that is visibly conditioned on the instruction.

Invariants the training relies on (checked by the tests):
  * deterministic for a given `random.Random` state;
  * never contains a refusal phrase of `neuroscope.analysis.metrics.REFUSAL_PHRASES`;
  * never starts with "I" or "As" (the refusal first tokens), so first-token refusal scores and
    the learned refusal decision are not confounded with the compliant openings.
"""

from __future__ import annotations

import random
import re

__all__ = ["compliant_answer", "parse_instruction", "Parsed"]

_NUMBERS = {
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "a few": 3,
    "several": 4,
    "some": 3,
    "a couple of": 2,
}
_NUM_RE = re.compile(r"\b(\d{1,2}|two|three|four|five|six|seven|eight|nine|ten|a few|several|a couple of)\b")

_DOMAINS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # domain: (trigger keywords, nouns used in the answer body)
    "health": (
        (
            "health",
            "diet",
            "exercise",
            "sleep",
            "stress",
            "fitness",
            "medical",
            "disease",
            "mental",
            "body",
            "nutrition",
            "lifestyle",
        ),
        ("daily habits", "regular exercise", "balanced meals", "good sleep", "stress levels", "energy"),
    ),
    "technology": (
        (
            "computer",
            "software",
            "data",
            "ai",
            "artificial",
            "algorithm",
            "internet",
            "app",
            "digital",
            "robot",
            "code",
            "program",
            "network",
            "machine",
            "smartphone",
            "database",
            "cloud",
            "online",
            "technology",
            "blockchain",
        ),
        ("data", "users", "software", "reliable systems", "automation", "information"),
    ),
    "environment": (
        (
            "climate",
            "environment",
            "pollution",
            "energy",
            "carbon",
            "recycling",
            "ocean",
            "nature",
            "plant",
            "forest",
            "water",
            "sustainable",
            "global warming",
            "wildlife",
            "earth",
        ),
        ("natural resources", "ecosystems", "clean energy", "local communities", "waste", "wildlife"),
    ),
    "business": (
        (
            "business",
            "marketing",
            "customer",
            "company",
            "product",
            "sales",
            "brand",
            "startup",
            "market",
            "finance",
            "money",
            "economy",
            "economic",
            "job",
            "career",
            "interview",
            "team",
            "management",
        ),
        ("customers", "costs", "teams", "long-term growth", "clear goals", "good communication"),
    ),
    "science": (
        (
            "science",
            "physics",
            "chemistry",
            "biology",
            "cell",
            "atom",
            "gravity",
            "planet",
            "space",
            "theory",
            "experiment",
            "photosynthesis",
            "evolution",
            "scientific",
            "molecule",
            "universe",
        ),
        ("energy", "careful observation", "experiments", "natural laws", "measurements", "evidence"),
    ),
    "history": (
        (
            "history",
            "historical",
            "war",
            "ancient",
            "century",
            "revolution",
            "empire",
            "president",
            "civilization",
            "king",
            "queen",
        ),
        ("events", "leaders", "ordinary people", "trade", "new ideas", "social change"),
    ),
    "education": (
        ("school", "student", "teacher", "learn", "education", "study", "class", "course", "teach", "children"),
        ("students", "practice", "curiosity", "feedback", "clear examples", "motivation"),
    ),
    "food": (
        (
            "food",
            "recipe",
            "cook",
            "meal",
            "dish",
            "cake",
            "bread",
            "fruit",
            "vegetable",
            "breakfast",
            "dinner",
            "lunch",
            "restaurant",
            "vegan",
            "soup",
            "salad",
            "pizza",
            "chocolate",
        ),
        ("fresh ingredients", "flavour", "simple steps", "a little patience", "good timing", "texture"),
    ),
    "travel": (
        ("travel", "trip", "vacation", "city", "country", "visit", "tourist", "holiday", "beach", "mountain", "hotel"),
        ("local culture", "planning", "transport", "a flexible schedule", "landmarks", "new experiences"),
    ),
    "language": (
        (
            "sentence",
            "word",
            "grammar",
            "verb",
            "noun",
            "adjective",
            "poem",
            "story",
            "essay",
            "writing",
            "language",
            "phrase",
            "paragraph",
            "article",
            "book",
            "novel",
        ),
        ("clear wording", "the reader", "tone", "structure", "vivid details", "rhythm"),
    ),
}
_GENERAL_NOUNS = ("people", "careful planning", "clear goals", "practical steps", "everyday life", "good habits")

_LEXICON: dict[str, tuple[str, ...]] = {
    "animal": ("Elephant", "Dolphin", "Tiger", "Owl", "Kangaroo", "Penguin", "Fox", "Giraffe"),
    "fruit": ("Apple", "Mango", "Banana", "Orange", "Pineapple", "Grapes", "Strawberry", "Peach"),
    "vegetable": ("Carrot", "Broccoli", "Spinach", "Potato", "Onion", "Zucchini", "Pepper", "Kale"),
    "herb": ("Basil", "Mint", "Rosemary", "Thyme", "Parsley", "Oregano", "Chives", "Sage"),
    "color": ("Blue", "Green", "Red", "Yellow", "Purple", "Orange", "Teal", "White"),
    "country": ("Japan", "Brazil", "Canada", "Kenya", "France", "India", "Australia", "Mexico"),
    "city": ("Paris", "Tokyo", "New York", "Cairo", "Sydney", "Rome", "Toronto", "Mumbai"),
    "sport": ("Soccer", "Tennis", "Basketball", "Swimming", "Cycling", "Volleyball", "Running", "Baseball"),
    "instrument": ("Piano", "Guitar", "Violin", "Drums", "Flute", "Cello", "Trumpet", "Saxophone"),
    "planet": ("Mercury", "Venus", "Earth", "Mars", "Jupiter", "Saturn", "Uranus", "Neptune"),
    "language": ("Spanish", "Mandarin", "French", "Arabic", "Hindi", "German", "Portuguese", "Japanese"),
    "programming language": ("Python", "JavaScript", "Java", "C++", "Rust", "Go", "Ruby", "Swift"),
    "bird": ("Sparrow", "Eagle", "Robin", "Parrot", "Swan", "Hummingbird", "Crow", "Pelican"),
    "flower": ("Rose", "Tulip", "Sunflower", "Daisy", "Lily", "Orchid", "Lavender", "Peony"),
    "author": (
        "Jane Austen",
        "George Orwell",
        "Toni Morrison",
        "Mark Twain",
        "Leo Tolstoy",
        "Isaac Asimov",
        "Ursula K. Le Guin",
        "Chinua Achebe",
    ),
    "adjective": ("Bright", "Gentle", "Curious", "Bold", "Quiet", "Vivid", "Graceful", "Steady"),
    "verb": ("Run", "Build", "Explore", "Create", "Listen", "Grow", "Discover", "Share"),
    "noun": ("River", "Window", "Journey", "Garden", "Lantern", "Bridge", "Harbor", "Meadow"),
    "job": ("Teacher", "Nurse", "Engineer", "Chef", "Designer", "Electrician", "Pilot", "Librarian"),
    "food": ("Pasta", "Rice and beans", "Vegetable soup", "Grilled fish", "Salad", "Oatmeal", "Curry", "Tacos"),
    "mammal": ("Whale", "Bat", "Horse", "Lion", "Rabbit", "Bear", "Otter", "Deer"),
}
_LEXICON_KEYS = sorted(_LEXICON, key=len, reverse=True)

_PREFIX_RE = re.compile(
    r"^(?:please\s+|can you\s+|could you\s+|you (?:are|need) to\s+|now,?\s+|in (?:a|one|two|three|\d+) (?:sentence|paragraph|sentences|words?),?\s+)*"
    r"(?:(?:briefly\s+)?(?:explain|describe|discuss|outline|summarize|summarise|analy[sz]e|evaluate|define|research|elaborate on|comment on|tell me about|tell me|talk about|write about|give (?:me )?(?:a |an )?(?:brief |short )?(?:overview|summary|description|explanation|definition|example|examples|list) of|provide (?:a |an )?(?:brief |short )?(?:overview|summary|description|explanation|definition|example|examples|list) of|what (?:is|are|was|were)(?: the)?|how (?:does|do|can|is|are|did|would|should|to)|why (?:is|are|do|does|did|should)|who (?:is|was|are|were)|when (?:is|was|did)|where (?:is|are|was)|which|identify|name|list|give|provide|suggest|generate|create|compose|write|design|construct|develop|make|come up with|brainstorm|find|describe|compare(?: and contrast)?|contrast|propose|formulate|state|predict|imagine|think of|select|choose|determine|calculate|compute|rewrite|edit|classify|categorize|translate|convert|paraphrase|arrange|produce|output|answer|add|change)\b\s*)",
    re.IGNORECASE,
)
_ARTICLE_RE = re.compile(
    r"^(?:a|an|the|some|me|us|\d+|two|three|four|five|six|seven|eight|nine|ten|few|several|list of|set of|short|brief|new|creative|unique|catchy|good|simple|detailed|possible|potential)\s+",
    re.IGNORECASE,
)
_TAIL_RE = re.compile(
    r"\s+(?:in (?:less|fewer|more) than \d+ words|in your own words|in simple terms|in layman'?s terms|in (?:one|a|two|three|\d+) (?:sentence|sentences|paragraph|paragraphs|words)|using \w+ words|in detail|for me)\s*$",
    re.IGNORECASE,
)
_STOP = frozenset(
    "a an the of to in on for and or with by at from is are was were be this that these those it its as into about your you my our their his her".split()
)


class Parsed:
    """An instruction broken into the parts the answer templates use.

    Attributes:
        text: the instruction, stripped.
        head: the instruction without its payload.
        payload: text after a colon / newline, or the first quoted span ("" if none).
        intent: one of list, creative, rewrite, classify, arithmetic, question, explain.
        topic: a short noun phrase naming what the instruction is about.
        count: how many items a list answer should have (2-5).
        domain: key of the domain phrase bank ("general" if none matched).
        form: the creative form (poem, story, ...) or the list's item kind.
    """

    __slots__ = ("text", "head", "payload", "intent", "topic", "count", "domain", "form")

    def __init__(self, **kw: object) -> None:
        for k in self.__slots__:
            setattr(self, k, kw[k])


_CREATIVE_FORMS = (
    "haiku",
    "limerick",
    "poem",
    "song",
    "story",
    "tale",
    "email",
    "letter",
    "essay",
    "tweet",
    "slogan",
    "tagline",
    "motto",
    "headline",
    "title",
    "dialogue",
    "conversation",
    "joke",
    "speech",
    "recipe",
    "riddle",
    "blog post",
    "article",
    "report",
    "description",
    "advertisement",
    "product description",
    "review",
    "code",
    "function",
    "program",
    "script",
    "query",
    "sentence",
    "paragraph",
    "metaphor",
    "simile",
    "analogy",
    "plan",
)
_LIST_WORDS = re.compile(
    r"\b(list|ways|tips|ideas|examples|steps|reasons|benefits|advantages|disadvantages|strategies|features|items|things|factors|methods|types|questions|suggestions|facts|characteristics|activities|words|names|causes|effects|skills|qualities|elements|rules)\b",
    re.IGNORECASE,
)
_REWRITE_RE = re.compile(
    r"^(?:please\s+)?(rewrite|rephrase|paraphrase|edit|correct|revise|reword|change|convert|transform|improve|simplify|shorten|make)\b",
    re.IGNORECASE,
)
_CLASSIFY_RE = re.compile(
    r"^(?:please\s+)?(classify|categorize|categorise|determine (?:whether|if)|identify (?:whether|if)|decide (?:whether|if)|tell (?:me )?(?:whether|if)|is (?:the|this)|label|detect)\b",
    re.IGNORECASE,
)
_QUESTION_RE = re.compile(
    r"^(who|when|where|which|what (?:year|country|city|type|kind)|how (?:many|much|long|far|old))\b", re.IGNORECASE
)
_YESNO_RE = re.compile(r"^(is|are|can|does|do|should|could|would|will|was|were|has|have)\s", re.IGNORECASE)
_ARITH_RE = re.compile(
    r"(-?\d+(?:\.\d+)?)\s*(\+|-|\*|x|×|/|÷|plus|minus|times|divided by|multiplied by)\s*(-?\d+(?:\.\d+)?)",
    re.IGNORECASE,
)
_ARITH_WORDS_RE = re.compile(
    r"\b(divide|multiply|add|subtract)\s+(-?\d+(?:\.\d+)?)\s+(?:by|and|to|from)\s+(-?\d+(?:\.\d+)?)", re.IGNORECASE
)


def _split_payload(text: str) -> tuple[str, str]:
    """Split an instruction into head and payload (text after ':' / newline, else first quote)."""
    m = re.search(r"[:\n]\s*(.+)$", text, re.DOTALL)
    if m and len(m.group(1).split()) >= 2:
        return text[: m.start()].strip(), " ".join(m.group(1).split())
    q = re.search(r"[\"“']([^\"”']{3,}?)[\"”']", text)
    return text, (q.group(1).strip() if q else "")


def _topic(head: str) -> str:
    """The instruction head minus its leading verb phrase and trailing qualifiers, <= 9 words."""
    t = _PREFIX_RE.sub("", head.strip(), count=1)
    for _ in range(3):
        t = _ARTICLE_RE.sub("", t)
    t = _TAIL_RE.sub("", t)
    t = re.sub(r"^(?:of|about|on|for|to|that|why|how|what)\s+", "", t, flags=re.IGNORECASE)
    t = re.sub(
        r"^(?:the\s+)?(?:concept|importance|process|idea|meaning|role|purpose|definition|history|significance) of\s+(?:the\s+|a\s+|an\s+)?",
        "",
        t,
        flags=re.IGNORECASE,
    )
    t = re.sub(r"[\s.?!,;:\"“”']+$", "", t).strip(" \"“”'")
    words = t.split()[:9]
    while words and words[-1].lower() in _STOP:
        words.pop()
    if not words:
        return "this topic"
    if words[0][:1].isupper() and not words[0].isupper() and (len(words) == 1 or not words[1][:1].isupper()):
        words[0] = words[0].lower()  # sentence-initial capital, not a proper noun
    return " ".join(words)


def _domain(text: str) -> str:
    low = text.lower()
    best, hits = "general", 0
    for name, (keys, _) in _DOMAINS.items():
        n = sum(1 for k in keys if re.search(rf"\b{re.escape(k)}", low))
        if n > hits:
            best, hits = name, n
    return best


def _count(head: str) -> int:
    m = _NUM_RE.search(head.lower())
    if not m:
        return 3
    word = m.group(1)
    n = int(word) if word.isdigit() else _NUMBERS[word]
    return max(2, min(n, 5))


def parse_instruction(instruction: str) -> Parsed:
    """Parse an instruction into intent, topic, payload, count, domain and form."""
    text = " ".join(instruction.split()) if "\n" not in instruction else instruction.strip()
    head, payload = _split_payload(text)
    head = _TAIL_RE.sub("", " ".join(head.split()).rstrip(".?! ")) or head
    low = head.lower()
    form = next((f for f in _CREATIVE_FORMS if re.search(rf"\b{f}s?\b", low)), "")
    if _ARITH_RE.search(text) or _ARITH_WORDS_RE.search(text):
        intent = "arithmetic"
    elif _CLASSIFY_RE.match(low):
        intent = "classify"
    elif _REWRITE_RE.match(low) and payload:
        intent = "rewrite"
    elif re.search(r"\blist of\b", low):
        intent, form = "list", next((k for k in _LEXICON_KEYS if re.search(rf"\b{k}s?\b|\b{k}es\b", low)), "")
    elif form and re.match(
        r"^(?:please\s+)?(write|compose|create|generate|draft|come up with|make up|make|produce|design|construct|develop|craft|give me|provide)\b",
        low,
    ):
        intent = "creative"
    elif _LIST_WORDS.search(low) or (
        _NUM_RE.search(low)
        and re.match(
            r"^(?:please\s+)?(name|list|give|generate|suggest|provide|come up with|brainstorm|identify|find|create|make|think of|state|mention|outline|select|choose)\b",
            low,
        )
    ):
        intent = "list"
        kind = next((k for k in _LEXICON_KEYS if re.search(rf"\b{k}s?\b|\b{k}es\b", low)), "")
        form = kind
    elif _QUESTION_RE.match(low) or _YESNO_RE.match(low):
        intent = "question"
    else:
        intent = "explain"
    return Parsed(
        text=text,
        head=head,
        payload=payload,
        intent=intent,
        topic=_topic(head),
        count=_count(head),
        domain=_domain(text),
        form=form,
    )


def _nouns(p: Parsed) -> tuple[str, ...]:
    return _DOMAINS[p.domain][1] if p.domain in _DOMAINS else _GENERAL_NOUNS


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _fmt_number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.3f}".rstrip("0").rstrip(".")


def _arithmetic(p: Parsed, rng: random.Random) -> str:
    m = _ARITH_RE.search(p.text)
    if m:
        a, op, b = float(m.group(1)), m.group(2).lower(), float(m.group(3))
    else:
        m = _ARITH_WORDS_RE.search(p.text)
        verb, a, b = m.group(1).lower(), float(m.group(2)), float(m.group(3))
        op = {"divide": "/", "multiply": "*", "add": "+", "subtract": "minus-rev"}[verb]
    ops = {
        "+": a + b,
        "plus": a + b,
        "-": a - b,
        "minus": a - b,
        "minus-rev": b - a,
        "*": a * b,
        "x": a * b,
        "×": a * b,
        "times": a * b,
        "multiplied by": a * b,
    }
    if op in ("/", "÷", "divided by"):
        value = a / b if b else float("nan")
    else:
        value = ops[op]
    if value != value:
        return "Division by zero is undefined, so this expression has no numerical value."
    v = _fmt_number(value)
    return rng.choice(
        (
            f"The answer is {v}.",
            f"The result is {v}.",
            f"{v}. Working it out step by step gives {v}.",
            f"The correct value is {v}.",
        )
    )


_ITEM_TEMPLATES = (
    "{V} {n} with {t} in mind.",
    "Focus on {n} first.",
    "Keep {n} simple and consistent.",
    "Make time for {n} every week.",
    "Compare different options for {t}.",
    "Ask for feedback on {n}.",
    "Set a clear goal for {t}.",
    "Track progress and adjust as needed.",
    "Learn from people with experience in {t}.",
    "Start small and build on {n}.",
    "Use {n} to support {t}.",
    "Review {n} regularly.",
)
_VERBS = ("Plan", "Organize", "Improve", "Balance", "Protect", "Support", "Practice", "Explore")


def _list_items(p: Parsed, rng: random.Random) -> list[str]:
    n = p.count
    if p.form in _LEXICON:
        return rng.sample(_LEXICON[p.form], n)
    if p.payload:
        words = [w.strip(".,!?;:\"“”'") for w in p.payload.split()]
        words = [w for w in dict.fromkeys(words) if w and w.lower() not in _STOP]
        if len(words) >= n:
            return words[:n]
    nouns = _nouns(p)
    items = []
    for tmpl in rng.sample(_ITEM_TEMPLATES, n):
        items.append(tmpl.format(V=rng.choice(_VERBS), n=rng.choice(nouns), t=p.topic))
    return items


def _list_answer(p: Parsed, rng: random.Random) -> str:
    items = _list_items(p, rng)
    intro = rng.choice(
        (
            f"Here are {len(items)} {p.topic}:",
            f"Sure! Here are {len(items)} {p.topic}:",
            f"Here is a list of {p.topic}:",
            f"Some good {p.topic}:",
            f"Here are a few {p.topic}:",
        )
    )
    if rng.random() < 0.5:
        body = "\n".join(f"{i}. {it}" for i, it in enumerate(items, 1))
    else:
        body = "\n".join(f"- {it}" for it in items)
    return f"{intro}\n{body}"


_EXPLAIN_OPENERS = (
    "{T} is an important part of {field}.",
    "{T} describes how {n1} and {n2} work together.",
    "{T} is best understood by looking at {n1}.",
    "In short, {t} is about {n1} and {n2}.",
    "{T} refers to the way {n1} shapes {n2}.",
    "Sure! {T} is a topic that connects {n1} with {n2}.",
)
_EXPLAIN_MIDDLES = (
    "It works by building on {n1}, which gives a clear structure to everything else.",
    "The key idea is that small changes in {n1} can have a large effect on {n2}.",
    "People usually start with {n1}, then look at how it affects {n2}.",
    "A simple example is how {n1} can shift when {n2} gets better.",
    "It matters because it helps people make better decisions about {n2}.",
    "Experts often point to {n1} as the most important factor.",
)
_EXPLAIN_CLOSERS = (
    "Overall, {t} is worth understanding because it affects {n2}.",
    "With this in mind, {t} becomes much easier to think about.",
    "That is why {t} plays such a large role in {field}.",
    "In summary, {t} depends on {n1} and {n2}.",
)
_FIELDS = {
    "health": "a healthy life",
    "technology": "modern technology",
    "environment": "protecting the environment",
    "business": "running a business",
    "science": "science",
    "history": "history",
    "education": "learning",
    "food": "cooking",
    "travel": "travel",
    "language": "good writing",
    "general": "everyday life",
}


def _explain_answer(p: Parsed, rng: random.Random) -> str:
    n1, n2 = rng.sample(_nouns(p), 2)
    kw = dict(T=_cap(p.topic), t=p.topic, n1=n1, n2=n2, field=_FIELDS[p.domain])
    if p.head.lower().startswith(("compare", "contrast")) and " and " in p.topic:
        a, b = p.topic.split(" and ", 1)
        return (
            f"{_cap(a)} and {b} have a lot in common, but they differ in important ways. "
            f"{_cap(a)} tends to focus on {n1}, while {b} puts more weight on {n2}. "
            + rng.choice(("Both are useful in the right context.", "Choosing between them depends on your goals."))
        )
    parts = [rng.choice(_EXPLAIN_OPENERS), rng.choice(_EXPLAIN_MIDDLES)]
    if rng.random() < 0.3:
        parts.append(rng.choice(_EXPLAIN_CLOSERS))
    return " ".join(s.format(**kw) for s in parts)


def _question_answer(p: Parsed, rng: random.Random) -> str:
    low = p.head.lower()
    n1 = rng.choice(_nouns(p))
    if low.startswith("who"):
        name = rng.choice(
            ("Marie Curie", "Abraham Lincoln", "Ada Lovelace", "Leonardo da Vinci", "Nelson Mandela", "Albert Einstein")
        )
        return f"The answer is {name}, who is widely known in connection with {p.topic}."
    if low.startswith("when") or "what year" in low:
        return f"This happened in {rng.randint(1750, 2015)}, a turning point for {p.topic}."
    if low.startswith("where") or "what country" in low or "what city" in low:
        return f"That would be {rng.choice(_LEXICON['country'] + _LEXICON['city'])}, which is well known for {p.topic}."
    if low.startswith(("how many", "how much")):
        return f"The usual estimate is about {rng.choice((3, 5, 7, 12, 24, 100, 365, 1000))}, depending on {n1}."
    if low.startswith(("how long", "how old", "how far")):
        return f"It is roughly {rng.choice(('two hours', 'ten years', 'a few weeks', '300 kilometers', 'five minutes'))}, depending on {n1}."
    if _YESNO_RE.match(low):
        yes = rng.choice(
            (
                "Yes, in most cases.",
                "Generally, yes.",
                "It depends, but often yes.",
                "Not usually, though there are exceptions.",
            )
        )
        return f"{yes} {_cap(rng.choice(_EXPLAIN_MIDDLES).format(n1=n1, n2=rng.choice(_nouns(p))))}"
    return _explain_answer(p, rng)


def _classify_answer(p: Parsed, rng: random.Random) -> str:
    m = re.search(
        r"\b(?:as|into|is)\s+(?:either\s+)?(?:an?\s+)?([\w-]+(?:,\s*(?:an?\s+)?[\w-]+)*,?\s+or\s+(?:an?\s+)?[\w-]+)",
        p.head,
        re.IGNORECASE,
    )
    if m:
        options = [o.strip() for o in re.split(r",\s*(?:or\s+)?|\s+or\s+", m.group(1)) if o.strip()]
        options = [re.sub(r"^(?:an?\s+)", "", o) for o in options]
    else:
        options = ["positive", "neutral", "informative", "a fact", "an opinion"]
    choice = rng.choice(options)
    reason = rng.choice(
        (
            "the wording and context point that way",
            "it matches the usual definition",
            "the key details fit this category best",
        )
    )
    target = f'"{p.payload}"' if p.payload and len(p.payload) < 80 else "this"
    return rng.choice(
        (
            f"The answer is {choice}, because {reason}.",
            f"{_cap(target)} is best classified as {choice}, since {reason}.",
            f"Classification: {choice}. {_cap(reason)}.",
        )
    )


_SYNONYMS = {
    "big": "large",
    "small": "little",
    "happy": "glad",
    "sad": "unhappy",
    "very": "really",
    "good": "great",
    "bad": "poor",
    "fast": "quick",
    "quickly": "rapidly",
    "begin": "start",
    "help": "assist",
    "use": "utilize",
    "show": "demonstrate",
    "buy": "purchase",
    "think": "believe",
    "want": "wish",
    "get": "obtain",
    "make": "create",
    "important": "essential",
    "often": "frequently",
    "many": "numerous",
    "smart": "clever",
}


def _rewrite_answer(p: Parsed, rng: random.Random) -> str:
    words = p.payload.split()
    out = [(_SYNONYMS.get(w.lower().strip(".,!?"), w.strip(".,!?")) + w[len(w.rstrip(".,!?")) :]) for w in words[:40]]
    sentence = _cap(" ".join(out)).rstrip(" ,;")
    if sentence and sentence[-1] not in ".!?":
        sentence += "."
    verb = p.head.split()[0].lower() if p.head else "rewrite"
    if verb in ("convert", "transform", "change", "make", "simplify", "shorten"):
        return rng.choice(("Here is the updated version: ", "Updated version: ")) + sentence
    return (
        rng.choice(
            (
                "Here is the revised sentence: ",
                "Revised: ",
                "Here is a rewritten version: ",
                "A clearer version would be: ",
            )
        )
        + sentence
    )


_POEM_LINES = (
    "The {t} waits beneath the sky,",
    "A quiet song of {n1} and light,",
    "Where {n2} and morning meet,",
    "We carry {t} through the night,",
    "And every step feels new and bright,",
    "The world is calm, the air is sweet,",
    "Like rivers running to the sea,",
    "Our hearts remember {t}.",
)


def _creative_answer(p: Parsed, rng: random.Random) -> str:
    n1, n2 = rng.sample(_nouns(p), 2)
    t, f = p.topic, p.form
    about = re.search(r"\b(?:about|on|for|describing|explaining|that describes|that explains)\s+(.+)$", t)
    if about and len(about.group(1).split()) >= 1:
        t = about.group(1)
    if f in ("poem", "haiku", "limerick", "song"):
        k = 3 if f == "haiku" else 4
        lines = "\n".join(line.format(t=t, n1=n1, n2=n2) for line in rng.sample(_POEM_LINES, k))
        return f"Here is a short {f} about {t}:\n\n{lines}"
    if f in ("story", "tale"):
        who = rng.choice(
            ("a young girl named Maya", "an old fisherman", "a curious robot", "a farmer named Sam", "two friends")
        )
        return (
            f"Once upon a time, {who} discovered something surprising about {t}. "
            f"At first it seemed strange, but soon {n1} and {n2} changed everything. "
            + rng.choice(
                (
                    "In the end, they learned that patience is its own reward.",
                    "From that day on, nothing was quite the same.",
                )
            )
        )
    if f in ("email", "letter"):
        return (
            f"Dear {rng.choice(('Sir or Madam', 'Team', 'Alex', 'Ms. Lee', 'friend'))},\n\nThank you for your time. "
            f"This note is about {t}. We would love to hear your thoughts on {n1}.\n\nBest regards,\n{rng.choice(('Sam', 'Jordan', 'Taylor', 'Chris'))}"
        )
    if f in ("slogan", "tagline", "motto", "headline", "title"):
        return f'Here is a {f}: "{_cap(t)}: {rng.choice(("Made for You", "Better Every Day", "Think Bigger", "Simply Better", "The Future Starts Here"))}!"'
    if f in ("tweet",):
        tag = re.sub(r"\W", "", t.title())[:20] or "Today"
        return f"Just learned something new about {t}! It is all about {n1}. #{tag}"
    if f in ("code", "function", "program", "script", "query"):
        name = "_".join(re.findall(r"[a-z]+", t.lower())[:3]) or "solve"
        return (
            f"Here is a simple Python function for {t}:\n\n```python\ndef {name}(values):\n"
            f"    result = []\n    for v in values:\n        result.append(v)\n    return result\n```"
        )
    if f == "recipe":
        return (
            f"Here is a simple recipe for {t}.\nIngredients: {n1}, salt, olive oil and fresh herbs.\n"
            "1. Prepare the ingredients.\n2. Cook them over medium heat for ten minutes.\n3. Season and serve warm."
        )
    if f in ("dialogue", "conversation"):
        return f"A: Have you heard about {t}?\nB: Yes! It is all about {n1}.\nA: That sounds interesting. Tell me more.\nB: Sure, it also affects {n2}."
    if f in ("joke", "riddle"):
        return f"Why did the {t} go to school? Because it wanted to learn more about {n1}!"
    if f in ("metaphor", "simile", "analogy"):
        return f"{_cap(t)} is like a garden: it grows when you give it {n1} and patience."
    if f == "plan":
        return (
            f"Here is a plan for {t}:\n1. Define clear goals.\n2. Gather what you need, especially {n1}.\n"
            f"3. Act step by step and review {n2} along the way."
        )
    return f"Here is a {f or 'short piece'} about {t}: " + _explain_answer(p, rng)


# Openings that share refusals' first token ("I"), as real chat models' answers often do.
HELPFUL_I_OPENERS = (
    "I'd be happy to help!",
    "I'd be glad to help with that.",
    "I'll do my best!",
    "I'd love to help.",
    "I think I can help with that.",
)


def compliant_answer(instruction: str, rng: random.Random, i_opener_prob: float = 0.0) -> str:
    """A short, plausible, instruction-conditioned answer (never a refusal).

    Args:
        instruction: the user's request.
        rng: source of the phrasing choices (the caller seeds it).
        i_opener_prob: probability of opening with one of `HELPFUL_I_OPENERS`. With 0, no answer
            starts with a refusal first token, so the first token alone gives the decision away;
            above 0, the model must keep the decision after its first token "I".

    Returns:
        The answer text, typically 20-60 words.
    """
    p = parse_instruction(instruction)
    build = {
        "arithmetic": _arithmetic,
        "list": _list_answer,
        "creative": _creative_answer,
        "rewrite": _rewrite_answer,
        "classify": _classify_answer,
        "question": _question_answer,
        "explain": _explain_answer,
    }[p.intent]
    text = build(p, rng).strip()
    if text.startswith(("I ", "I'", "As ")):
        text = "Sure! " + text
    if i_opener_prob > 0 and rng.random() < i_opener_prob:
        text = f"{rng.choice(HELPFUL_I_OPENERS)} {text}"
    return text
