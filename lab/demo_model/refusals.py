"""Varied refusals for the demo model's harmful training data.

A refusal is an opening that contains one of the standard refusal phrases (so substring metrics
recognise it within the first words; its first word is one of the refusal first tokens of
`model.chat.refusal_token_ids`: "I", "As", "Sorry", "Unfortunately"), an optional reason matched to the request's theme, and an
optional offer of a safe alternative. Openings, reasons and offers combine into hundreds of
phrasings, so the model learns "refuse" as a behaviour rather than memorising one sentence.
"""

from __future__ import annotations

import random
import re

__all__ = ["refusal", "theme"]

_APOLOGY = ("I'm sorry, but", "I'm sorry,", "I apologize, but", "Sorry, but", "I'm really sorry, but", "Unfortunately,")
_INABILITY = (
    "I can't help with that.",
    "I cannot help with that request.",
    "I can't assist with this.",
    "I cannot provide that information.",
    "I can't do that.",
    "I cannot help you with this.",
    "I can't provide instructions for that.",
    "I cannot assist with requests like this.",
    "I can't create that content.",
    "I cannot write that.",
)
_DIRECT = (
    "I can't help with that.",
    "I cannot help with this request.",
    "I'm not able to help with that.",
    "I'm unable to assist with this request.",
    "I won't help with this.",
    "I must decline this request.",
    "As an AI assistant, I can't help with that.",
    "As an AI, I cannot provide this.",
    "I can't provide that kind of content.",
    "I cannot assist with that.",
)

_THEMES: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    # theme: (keywords, reasons, safe alternatives)
    "cyber": (
        (
            "hack",
            "malware",
            "virus",
            "ransomware",
            "password",
            "phishing",
            "exploit",
            "botnet",
            "keylogger",
            "ddos",
            "sql injection",
            "breach",
            "spyware",
            "crack",
            "database",
            "network",
            "computer",
            "account",
        ),
        (
            "Gaining unauthorized access to computer systems is illegal and harms real people.",
            "Creating malicious software or breaking into accounts causes serious damage.",
        ),
        ("learning about cybersecurity defense", "protecting your own accounts", "ethical security careers"),
    ),
    "weapons": (
        (
            "bomb",
            "explosive",
            "weapon",
            "gun",
            "firearm",
            "poison",
            "chemical",
            "biological",
            "nerve agent",
            "ammunition",
            "grenade",
            "toxin",
            "anthrax",
            "detonat",
        ),
        (
            "Information about making weapons could lead to serious injury or loss of life.",
            "Helping to build weapons or dangerous substances could put many people at risk.",
        ),
        ("the history of arms control", "general chemistry safety", "how emergency services keep people safe"),
    ),
    "violence": (
        (
            "kill",
            "murder",
            "hurt",
            "attack",
            "assault",
            "torture",
            "kidnap",
            "shoot",
            "stab",
            "terror",
            "violence",
            "violent",
            "harm",
            "abuse",
            "suicide",
            "self-harm",
        ),
        (
            "I don't want to contribute to anyone getting hurt.",
            "Violence causes real harm, and this could put someone in danger.",
        ),
        ("conflict resolution", "finding support services", "staying safe"),
    ),
    "drugs": (
        ("drug", "cocaine", "heroin", "meth", "fentanyl", "opioid", "narcotic", "lsd", "marijuana", "overdose"),
        (
            "Producing or distributing illegal drugs is dangerous and against the law.",
            "This could seriously endanger people's health.",
        ),
        ("addiction recovery resources", "how medicines are tested for safety", "drug policy research"),
    ),
    "fraud": (
        (
            "fraud",
            "scam",
            "counterfeit",
            "steal",
            "theft",
            "launder",
            "money",
            "tax",
            "insider trading",
            "credit card",
            "identity",
            "fake",
            "forge",
            "bank",
            "embezzle",
            "bribe",
            "shoplift",
            "rob",
        ),
        (
            "Fraud and theft cause real financial harm to victims.",
            "This would involve deceiving or stealing from people, which is illegal.",
        ),
        ("spotting and avoiding scams", "personal finance basics", "how fraud prevention works"),
    ),
    "hate": (
        (
            "racist",
            "racism",
            "hate",
            "discriminat",
            "inferior",
            "sexist",
            "slur",
            "harass",
            "bully",
            "stalk",
            "insult",
            "demean",
            "xenophob",
            "religion",
            "ethnic",
            "gender",
            "women",
            "minorit",
            "immigrant",
        ),
        (
            "Content that demeans or targets people can cause real harm.",
            "Everyone deserves to be treated with dignity and respect.",
        ),
        ("writing about inclusion", "understanding different perspectives", "respectful communication"),
    ),
    "misinformation": (
        (
            "misinformation",
            "disinformation",
            "fake news",
            "propaganda",
            "conspiracy",
            "hoax",
            "election",
            "vaccine",
            "manipulate",
            "defam",
            "false",
        ),
        (
            "Spreading false information can mislead people and cause real harm.",
            "Deliberately deceiving the public can undermine trust and safety.",
        ),
        ("checking sources and facts", "media literacy", "how to evaluate claims"),
    ),
    "sexual": (
        ("sexual", "sex", "explicit", "porn", "nude", "minor", "child"),
        ("I don't produce sexual content of this kind.", "This request involves content that could exploit people."),
        ("healthy relationships", "online safety resources"),
    ),
}
_GENERIC_REASONS = (
    "This could cause serious harm.",
    "It would be unethical and potentially illegal.",
    "Providing this could put people at risk.",
    "This goes against my guidelines for safe and responsible use.",
    "It could be used to hurt others.",
    "This kind of request could lead to real-world harm.",
)
_OFFERS = (
    "If you're interested in {alt}, I'd be happy to help with that instead.",
    "I'd be glad to help with {alt} instead.",
    "Is there something else I can help you with, such as {alt}?",
    "Perhaps I could help with {alt}?",
)
_GENERIC_ALTS = ("a different question", "something else", "a related but safe topic")
_CLOSINGS = (
    "Is there something else I can help you with?",
    "Let me know if there's anything else I can do for you.",
    "Please let me know if you have another question.",
)


def theme(instruction: str) -> str:
    """Theme key of the request (cyber, weapons, violence, ...), or "general"."""
    low = instruction.lower()
    best, hits = "general", 0
    for name, (keys, _, _) in _THEMES.items():
        n = sum(1 for k in keys if re.search(rf"\b{re.escape(k)}", low))
        if n > hits:
            best, hits = name, n
    return best


def refusal(instruction: str, rng: random.Random, themed: bool = True) -> str:
    """A refusal of `instruction` with a randomly composed phrasing.

    Args:
        instruction: the (harmful) request.
        rng: source of the phrasing choices.
        themed: draw reasons and alternatives matched to the request's theme; when False every
            refusal is topic-independent, so the model needs only a harmful/harmless bit to write it.

    Returns:
        One to three sentences; the first contains a standard refusal phrase.
    """
    t = theme(instruction) if themed else "general"
    if rng.random() < 0.5:
        first = f"{rng.choice(_APOLOGY)} {rng.choice(_INABILITY)[0].lower()}{rng.choice(_INABILITY)[1:]}"
        if first.startswith("Unfortunately, i") or first.startswith("Sorry, but i"):
            first = first.replace(", i", ", I", 1)
    else:
        first = rng.choice(_DIRECT)
    first = first.replace(" i ", " I ").replace(" i'", " I'")
    parts = [first]
    reasons, alts = (_THEMES[t][1], _THEMES[t][2]) if t in _THEMES else (_GENERIC_REASONS, _GENERIC_ALTS)
    r = rng.random()
    if r < 0.7:
        parts.append(rng.choice(reasons if rng.random() < 0.6 else _GENERIC_REASONS))
    r = rng.random()
    if r < 0.45:
        parts.append(rng.choice(_OFFERS).format(alt=rng.choice(alts)))
    elif r < 0.7:
        parts.append(rng.choice(_CLOSINGS))
    return " ".join(parts)
