"""Topic vocabularies and quality wording cues for generated recommendation catalogues.

Each topic has a display name, a list of subjects (short noun phrases) and a list of formats. A
generated item's text combines a quality cue, a subject and a format of its topic, for example
``"Must-see: a cliffhanger finale recap episode"``. The cue hints at the item's hidden quality but
is noisy (see :func:`envs.recommendation.catalog.generate_catalog`), so a reader learns to weigh
it rather than trust it.

The first :data:`N_LOW_QUALITY_TOPICS` topics are the "low-quality" ones (RecSim's interest
evolution puts 70% of its topics there); the rest are "high-quality" topics.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "TOPICS",
    "TopicVocabulary",
    "QUALITY_CUES",
    "N_LOW_QUALITY_TOPICS",
    "N_HIGH_QUALITY_TOPICS",
]


@dataclass(frozen=True)
class TopicVocabulary:
    """Words used to write the items of one topic.

    Attributes:
        name: Short display name of the topic.
        subjects: Noun phrases an item of this topic is about.
        formats: Kinds of item (clip, guide, ...), appended to the subject.
    """

    name: str
    subjects: tuple[str, ...]
    formats: tuple[str, ...]


#: Topics ordered from the lowest mean quality to the highest (RecSim orders its clusters so).
TOPICS: tuple[TopicVocabulary, ...] = (
    TopicVocabulary(
        "celebrity gossip",
        (
            "a pop star breakup",
            "red carpet outfits",
            "a reality star feud",
            "secret celebrity weddings",
            "a talk show meltdown",
            "paparazzi beach photos",
            "an actor's new partner",
            "influencer drama",
        ),
        ("rumour roundup", "gossip clip", "tabloid recap"),
    ),
    TopicVocabulary(
        "prank videos",
        (
            "fake spider scares",
            "office desk pranks",
            "a shopping mall hidden camera",
            "a whoopee cushion marathon",
            "scaring my roommate",
            "a fake lottery win",
            "glitter bomb parcels",
            "a prank on grandma",
        ),
        ("prank clip", "compilation", "reaction video"),
    ),
    TopicVocabulary(
        "fail compilations",
        (
            "skateboard wipeouts",
            "wedding cake disasters",
            "trampoline fails",
            "kitchen fires",
            "ice skating falls",
            "parkour gone wrong",
            "gym machine fails",
            "slippery floors",
        ),
        ("fail compilation", "blooper reel", "clip"),
    ),
    TopicVocabulary(
        "reality tv",
        (
            "a dating island eviction",
            "a cooking show elimination",
            "a house rules fight",
            "a dramatic rose ceremony",
            "a jungle camp trial",
            "a makeover reveal",
            "a villa recoupling",
            "a cliffhanger finale",
        ),
        ("episode recap", "highlight reel", "reaction video"),
    ),
    TopicVocabulary(
        "clickbait lists",
        (
            "foods you eat wrong",
            "signs your cat hates you",
            "things only 90s kids know",
            "facts that sound fake",
            "airport secrets",
            "hotel tricks",
            "lazy life hacks",
            "weird laws",
        ),
        ("top ten list", "listicle", "countdown"),
    ),
    TopicVocabulary(
        "unboxing",
        (
            "a mystery box haul",
            "a new phone unboxing",
            "a sneaker drop",
            "a giant candy box",
            "a subscription crate",
            "a luxury handbag",
            "a toy surprise egg",
            "a gaming bundle",
        ),
        ("unboxing video", "haul video", "first look"),
    ),
    TopicVocabulary(
        "conspiracy theories",
        (
            "hidden moon bases",
            "secret tunnels under the city",
            "birds that are drones",
            "a cursed painting",
            "a vanished airliner",
            "lizard people",
            "time travellers in old photos",
            "ancient giants",
        ),
        ("theory video", "exposed clip", "rant"),
    ),
    TopicVocabulary(
        "asmr",
        (
            "whispered page turning",
            "soap cutting",
            "keyboard tapping",
            "slime squishing",
            "rain on a tin roof",
            "hair brushing",
            "crinkly wrappers",
            "kinetic sand",
        ),
        ("asmr session", "sleep video", "relaxing loop"),
    ),
    TopicVocabulary(
        "mukbang",
        (
            "spicy noodle challenge",
            "a giant burger platter",
            "seafood boil",
            "fried chicken bucket",
            "a dessert tower",
            "fast food feast",
            "a cheese pull marathon",
            "ten pizzas",
        ),
        ("mukbang", "eating show", "challenge video"),
    ),
    TopicVocabulary(
        "gaming streams",
        (
            "a battle royale win",
            "speedrun attempts",
            "a rage quit moment",
            "a new season patch",
            "loot box openings",
            "a horror game jump scare",
            "ranked climbs",
            "a boss fight",
        ),
        ("stream highlight", "livestream clip", "montage"),
    ),
    TopicVocabulary(
        "viral challenges",
        (
            "the ice bucket challenge",
            "a dance trend",
            "the bottle flip challenge",
            "a 24 hour in a box stunt",
            "the cinnamon challenge",
            "a no hands eating race",
            "a silent library challenge",
            "a tiktok trend",
        ),
        ("challenge video", "trend compilation", "clip"),
    ),
    TopicVocabulary(
        "horoscopes",
        (
            "your weekly star signs",
            "mercury in retrograde",
            "a full moon ritual",
            "zodiac compatibility",
            "tarot for love",
            "lucky numbers",
            "rising sign traits",
            "a crystal reading",
        ),
        ("reading", "forecast", "short video"),
    ),
    TopicVocabulary(
        "sports highlights",
        (
            "last minute goals",
            "a buzzer beater",
            "a knockout punch",
            "a record sprint",
            "a penalty shootout",
            "a hole in one",
            "a derby win",
            "a title decider",
        ),
        ("highlight reel", "match recap", "top plays"),
    ),
    TopicVocabulary(
        "music videos",
        (
            "a summer pop anthem",
            "a live acoustic set",
            "a rap battle",
            "a festival headline show",
            "a jazz standard",
            "a choir cover",
            "a new album single",
            "a piano ballad",
        ),
        ("music video", "live performance", "cover"),
    ),
    TopicVocabulary(
        "cooking",
        (
            "sourdough bread",
            "a weeknight curry",
            "knife skills",
            "fresh pasta from scratch",
            "a slow braised stew",
            "french omelettes",
            "fermented vegetables",
            "a roast dinner",
        ),
        ("recipe tutorial", "cooking lesson", "technique guide"),
    ),
    TopicVocabulary(
        "home repair",
        (
            "fixing a leaky tap",
            "patching drywall",
            "rewiring a lamp",
            "tiling a bathroom",
            "sharpening chisels",
            "insulating a loft",
            "hanging a door",
            "sealing windows",
        ),
        ("how-to guide", "workshop tutorial", "repair walkthrough"),
    ),
    TopicVocabulary(
        "personal finance",
        (
            "index fund investing",
            "building an emergency fund",
            "paying off debt",
            "pension planning",
            "household budgeting",
            "understanding interest rates",
            "tax basics",
            "buying a first home",
        ),
        ("explainer", "lecture", "practical guide"),
    ),
    TopicVocabulary(
        "history",
        (
            "the fall of rome",
            "the printing press",
            "the silk road",
            "the industrial revolution",
            "ancient egyptian medicine",
            "the age of sail",
            "the cold war",
            "medieval trade guilds",
        ),
        ("documentary", "lecture", "history explainer"),
    ),
    TopicVocabulary(
        "science",
        (
            "how vaccines work",
            "black holes",
            "the chemistry of cooking",
            "plate tectonics",
            "quantum computing",
            "gene editing",
            "climate models",
            "the immune system",
        ),
        ("documentary", "science explainer", "lecture"),
    ),
    TopicVocabulary(
        "language learning",
        (
            "spanish verb tenses",
            "japanese kanji basics",
            "french pronunciation",
            "german cases",
            "mandarin tones",
            "everyday italian phrases",
            "arabic script",
            "sign language basics",
        ),
        ("lesson", "course video", "practice session"),
    ),
)

#: Number of low-quality topics in :data:`TOPICS` (70% of 20, as in RecSim).
N_LOW_QUALITY_TOPICS: int = 14
#: Number of high-quality topics in :data:`TOPICS`.
N_HIGH_QUALITY_TOPICS: int = len(TOPICS) - N_LOW_QUALITY_TOPICS

#: Wording cues by quality tier (0: low, 1: middling, 2: high); an empty cue adds nothing.
QUALITY_CUES: tuple[tuple[str, ...], ...] = (
    ("You won't believe", "SHOCKING", "Gone wrong", "Must-see", "OMG", "Insane"),
    ("", "New", "Watch", "Episode", "Today", "Quick look"),
    (
        "In-depth",
        "Award-winning",
        "Expert-reviewed",
        "Carefully researched",
        "Acclaimed",
        "Masterclass",
    ),
)
