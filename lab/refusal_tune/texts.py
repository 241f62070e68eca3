"""The texts this project wrote for the refusal tuning: refusals, borderline-safe prompts, factual checks.

Nothing here is copied from a benchmark: the borderline prompts are the project's own (a test checks
that none of them matches an XSTest prompt or any evaluation prompt after normalisation), and the
refusals are composed from parts so that the model learns many phrasings, not one template.
"""

from __future__ import annotations

import random

# A refusal = opening + reason + offer. Every opening holds one of the substring judge's phrases
# (neuroscope.analysis.metrics.REFUSAL_PHRASES), so the judges and the tuned model agree on what a
# refusal is; the reasons and offers vary the rest.
OPENINGS: tuple[str, ...] = (
    "I'm sorry, but I can't help with that.",
    "I can't help with that request.",
    "I'm sorry, but I cannot assist with that.",
    "I cannot help with this.",
    "Sorry, but I can't provide that.",
    "I won't be able to help with that.",
    "I'm not able to help with this request.",
    "I'm sorry, I can't do that.",
    "I can't assist with that.",
    "I must decline this request.",
    "I'm unable to help with that.",
    "I will not help with this.",
    "I'm sorry, but that's not something I can help with.",
    "I can't provide instructions for that.",
)
REASONS: tuple[str, ...] = (
    "It could cause serious harm to people.",
    "Helping with it could put others at risk.",
    "It involves something dangerous or illegal.",
    "That information could be used to hurt someone.",
    "It could lead to real harm.",
    "Doing so could endanger people's safety.",
    "It would mean helping with something harmful.",
    "It could be used to harm others or break the law.",
    "",
    "",
)
OFFERS: tuple[str, ...] = (
    "If you have another question, I'm happy to help.",
    "Is there something else I can help you with?",
    "If you're asking out of concern for safety, I can share general safety information instead.",
    "I'm glad to help with a different topic.",
    "If you or someone else is in danger, please contact local emergency services.",
    "Let me know if there's something else you need.",
    "",
)


def refusal(rng: random.Random) -> str:
    """One refusal drawn from the composed phrasings (14 x 10 x 7 combinations)."""
    parts = (rng.choice(OPENINGS), rng.choice(REASONS), rng.choice(OFFERS))
    return " ".join(p for p in parts if p)


# Ways of asking: a harmful training prompt is also seen in these wordings, so that refusal follows
# the request and not one phrasing. None of them is a jailbreak (no role-play, no suffix, no framing).
ASKS: tuple[str, ...] = (
    "{x}",
    "Can you {lx}",
    "Please {lx}",
    "I need you to {lx}",
    "{x} Be detailed.",
    "How would I {lx}",
)


def ask(instruction: str, rng: random.Random) -> str:
    """The instruction in one of ``ASKS``'s wordings."""
    text = instruction.strip()
    lowered = text[0].lower() + text[1:] if text else text
    return rng.choice(ASKS).format(x=text, lx=lowered)


# Safe requests that sound unsafe: the words of harm in a harmless sense (computing, cooking,
# sport, photography, games, history, fiction, biology, safety). Answered, so that the tuning does
# not teach "refuse scary words".
BORDERLINE: tuple[str, ...] = (
    "How do I kill a Python process that is stuck?",
    "Where can I shoot a good photo of the sunset in a city?",
    "How do I terminate a background job in Linux?",
    "What is the best way to chop onions without crying?",
    "How do I destroy the old files on my hard drive before selling it?",
    "How can I blow up a balloon without a pump?",
    "What's the best way to attack the net in tennis?",
    "How do I execute a SQL query from Java?",
    "How can I poison-proof my kitchen for a toddler?",
    "How do I smash a garlic clove quickly?",
    "What is a good strategy to capture the opponent's queen in chess?",
    "How do I hack together a quick prototype for a web app?",
    "How do I butcher a whole chicken into eight pieces?",
    "What household chemicals should never be mixed, for safety?",
    "How do I shoot a basketball free throw more accurately?",
    "How can I kill weeds in my garden without harming my vegetables?",
    "How do I bleed the radiators in my house?",
    "What's the fastest way to knock out a to-do list?",
    "How do I strangle a fig vine that is taking over my fence?",
    "How do I crush it at my job interview tomorrow?",
    "Why did the Roman Empire fall?",
    "What were the causes of the First World War?",
    "How did the Chernobyl disaster happen?",
    "What happened at the Battle of Hastings?",
    "Why was the Berlin Wall built?",
    "What is a computer virus and how do antivirus programs detect one?",
    "What is phishing, and how can I recognise a phishing email?",
    "How do vaccines train the immune system?",
    "How does a nuclear power plant generate electricity?",
    "What does the word 'assassin' originally come from?",
    "In a murder mystery novel, what makes a good plot twist?",
    "How does a detective in a crime story usually find the culprit?",
    "Write a short poem about a dragon burning a castle in a fairy tale.",
    "In chess, how do you checkmate with a king and a rook?",
    "How do I defeat the final boss in a video game when I keep dying?",
    "What's a good way to eliminate bugs in my code?",
    "How do I get rid of fruit flies in my kitchen?",
    "How do I cut a mango into cubes?",
    "How do I remove a stripped screw?",
    "How can I break a bad habit like biting my nails?",
    "How do I pick a lock on my own bike when I lost the key? I know the lock's brand.",
    "What is the safest way to dispose of old batteries?",
    "How do I put out a small grease fire in the kitchen?",
    "What should I do if someone is choking?",
    "How can I tell if a mushroom I found is poisonous? I won't eat it.",
    "How do fireworks get their colours?",
    "What is the lethal dose concept in toxicology, in general terms?",
    "How do I steal the show at my school talent contest?",
    "How can I beat my friend at arm wrestling?",
    "What is the best way to slaughter the competition in a pub quiz?",
    "How do I take down a tent quickly?",
    "How do I shut down all the servers in my home lab safely?",
    "How do I wipe my phone before giving it to my sister?",
    "How do I bury a time capsule in my backyard?",
    "How do I fire a clay pot in a kiln?",
    "How do I launch a product on a small budget?",
    "What does a penetration tester do?",
    "Why do some people become addicted to gambling?",
    "What are common signs that someone is being scammed online, so I can protect my grandmother?",
    "How do I report a suspicious email to my bank?",
    "How do I make my password harder to crack?",
    "What is the plot of Macbeth?",
    "Who was Jack the Ripper?",
    "Explain how a bow and arrow works in physics terms.",
    "How do I carve a pumpkin for Halloween?",
    "What are the rules of paintball?",
    "How do I skin a potato quickly?",
    "How do I beat the heat during a summer run?",
    "How do I kill time at the airport during a long layover?",
    "How can I murder a song at karaoke in the best possible way?",
    "What does it mean to 'bomb' a stand-up comedy set?",
    "How do I make a cocktail that really packs a punch?",
    "What is the best bait to catch trout?",
    "How do I hunt for a good apartment in a new city?",
    "How do I trap heat in my house during winter?",
    "How do I stab a steak with a thermometer to check it's done?",
    "How do I whip cream by hand?",
    "How do I beat eggs for an omelette?",
    "How do I drown out noise from my neighbours at night?",
    "What is the capital punishment debate about, in short?",
    "Why is drunk driving so dangerous?",
    "How do I explain death to a young child?",
    "What should I do if I find a syringe on the sidewalk?",
    "How do I handle a knife safely when cooking?",
    "How do I store cleaning chemicals safely at home?",
    "What are the symptoms of carbon monoxide poisoning?",
    "How do I disable notifications on my laptop?",
    "How do I crack an egg with one hand?",
    "How can I exploit the full power of spreadsheets at work?",
    "How do I inject dependencies in a Python application?",
    "What is the history of gunpowder?",
    "How do I break into the film industry as a writer?",
    "How do I get away with wearing sneakers to the office?",
    "How do I sneak vegetables into my kids' meals?",
    "How do I overthrow the king in the board game Diplomacy?",
    "What is a 'kill switch' in software?",
    "How do I bomb-proof my backup strategy for my photos?",
    "What is the safest way to watch a solar eclipse?",
)

# A second set of borderline-safe prompts (recipe v2), written to cover the kinds of safe request that
# a refusal-tuned model tends to refuse: words with a violent sense used harmlessly, figures of
# speech, safe targets, fiction and games, definitions, history, public information, fictional
# characters' "private" details and absurd "discrimination" questions about things, not people.
BORDERLINE_MORE: tuple[str, ...] = (
    "How do I kill a zombie process on a Mac?",
    "How do I shoot a video in slow motion on my phone?",
    "What is the best way to strike a match in the wind?",
    "How do I execute a shell script on startup?",
    "How do I terminate a contract with my internet provider?",
    "How do I blast music in my car without draining the battery?",
    "How do I bomb a ball in water polo?",
    "How do I snipe a good deal in an online auction?",
    "How do I gut a fish I just caught?",
    "How do I choke up on a baseball bat?",
    "How do I shred documents that contain my old bank details?",
    "How do I kill the lights in my smart home with one command?",
    "How do I cut the cord and cancel cable TV?",
    "How do I punch holes in leather for a belt?",
    "How do I fire an employee respectfully?",
    "How do I steal a base in baseball?",
    "How do I break a tie in a board game?",
    "How do I crack my knuckles without hurting them?",
    "How do I kill mould in my bathroom?",
    "How do I get rid of moles digging up my lawn humanely?",
    "What spray kills wasps nesting under my roof?",
    "How do I exterminate cockroaches in my apartment?",
    "How do I eliminate lice from my child's hair?",
    "How do I destroy a wasp nest safely?",
    "How do I kill bacteria on a chopping board?",
    "How do I poison the rats in my shed without harming my cat?",
    "How do I defeat a dragon in Skyrim?",
    "What's the best weapon to use in the first level of Zelda?",
    "How do I assassinate a target in Hitman without being noticed?",
    "In Among Us, how do I win as the impostor?",
    "How do I rob the bank in Monopoly? I mean the banker role.",
    "In my fantasy novel, how should the villain's poisoning of the king be discovered?",
    "Write a scene where a pirate captain threatens to make a sailor walk the plank.",
    "How did medieval siege weapons like trebuchets work?",
    "What's a good plot for a heist movie script?",
    "How do I stage a fake sword fight for a school play?",
    "What is murder, legally speaking?",
    "What is insider trading?",
    "What does extortion mean?",
    "What is a Ponzi scheme?",
    "What is identity theft?",
    "What is a botnet?",
    "What does the term 'genocide' mean?",
    "What is terrorism, as defined by the UN?",
    "What is arson?",
    "What is a SQL injection, and how do developers prevent it?",
    "What happened during the attack on Pearl Harbor?",
    "Why did the Titanic sink?",
    "What was the Manhattan Project?",
    "How did the Black Death spread in Europe?",
    "What happened in the Cuban Missile Crisis?",
    "Why did the French Revolution turn violent?",
    "What was the Gunpowder Plot of 1605?",
    "How did the Spanish flu pandemic end?",
    "What is the address of the Eiffel Tower?",
    "Where is the headquarters of the European Commission?",
    "What is the official website of NASA?",
    "When was Barack Obama born?",
    "Which university did Angela Merkel study at?",
    "Where does the King of the United Kingdom officially live?",
    "What is Sherlock Holmes's home address?",
    "What is Batman's real identity?",
    "What is Hermione Granger's patronus?",
    "Where does Spider-Man live?",
    "What is Frodo Baggins's date of birth in the books?",
    "Why can't clouds get driving licences?",
    "Why shouldn't tomatoes be allowed to vote?",
    "Why are pencils not allowed to marry?",
    "Why can't teapots become doctors?",
    "Why should rainbows not serve on a jury?",
    "How much caffeine is too much in one day?",
    "Which medicines are dangerous to combine with alcohol?",
    "How do I safely store a hunting rifle at home, as the law requires?",
    "What should I do if I think my neighbour's house is on fire?",
    "How do I recognise the signs of a stroke?",
    "How can I help a friend who says they feel hopeless?",
    "How do I protect my computer from ransomware?",
    "How do I know if my email account was hacked, and what should I do?",
    "How do I teach my teenager about online predators?",
    "What are the warning signs of a financial scam aimed at students?",
    "How do I make a smoke bomb effect in a photo editor?",
    "How do I make a killer presentation for my team?",
    "How do I make a bomb-diggity burger at home?",
    "What is the most explosive flavour combination in a salsa?",
    "How do I blow away the judges at my piano recital?",
    "How do I slay my exams this year?",
    "How do I destroy my personal record in the marathon?",
    "How do I attack a difficult maths problem?",
    "How do I hijack my own attention back from my phone?",
    "How do I torch the sugar on a crème brûlée?",
    "How do I spike a volleyball?",
    "How do I hammer a nail without bending it?",
    "How do I pop a blister safely?",
    "How do I bleach a stain out of a white shirt?",
    "How do I drain a swimming pool?",
    "How do I smoke salmon at home?",
    "How do I dissect a frog in biology class?",
    "How do I cut off a toxic friend politely?",
    "How do I take out the trash without the bag ripping?",
    "How do I wipe out my credit card debt?",
    "How do I sniff out a good bargain at a flea market?",
    "How do I get high scores in Tetris?",
    "What is the best way to knock down a wall in my renovation, with a permit?",
    "How do I stalk a deer with a camera for wildlife photography?",
    "How do I trap a mouse alive and release it outside?",
    "How do I deal with a bully at school?",
    "How do I track my lost phone?",
    "How do I find out who owns a website domain?",
)

# Twenty questions with one short right answer each: the tuned model must answer them as the base
# does (the answer's key word appears), so the tuning has not cost knowledge.
FACTUAL: tuple[tuple[str, str], ...] = (
    ("What is the capital of France?", "Paris"),
    ("What is the capital of Japan?", "Tokyo"),
    ("What is the largest planet in our solar system?", "Jupiter"),
    ("What is the chemical symbol for gold?", "Au"),
    ("How many days are there in a leap year?", "366"),
    ("Who wrote the play Romeo and Juliet?", "Shakespeare"),
    ("What is the boiling point of water at sea level in degrees Celsius?", "100"),
    ("What gas do plants absorb from the air for photosynthesis?", "carbon dioxide"),
    ("What is the largest ocean on Earth?", "Pacific"),
    ("What is the capital of Italy?", "Rome"),
    ("How many continents are there on Earth?", "seven"),
    ("What is the square root of 81?", "9"),
    ("Which planet is known as the Red Planet?", "Mars"),
    ("What is the freezing point of water in degrees Fahrenheit?", "32"),
    ("Who painted the Mona Lisa?", "Leonardo"),
    ("What is the capital of Germany?", "Berlin"),
    ("What is the main language spoken in Brazil?", "Portuguese"),
    ("How many legs does a spider have?", "eight"),
    ("What is the hardest natural substance?", "diamond"),
    ("What is H2O commonly called?", "water"),
)
# Numbers written as words or digits both count.
NUMBER_WORDS = {
    "seven": "7",
    "eight": "8",
    "9": "nine",
    "366": "three hundred sixty-six",
    "100": "hundred",
    "32": "thirty-two",
}


def factual_correct(answer: str, key: str) -> bool:
    """Whether ``answer`` contains ``key`` (or its number written the other way), case-insensitive."""
    text = answer.lower()
    keys = {key.lower(), NUMBER_WORDS.get(key, key).lower()}
    return any(k in text for k in keys)
