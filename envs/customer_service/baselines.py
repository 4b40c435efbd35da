"""Baseline policies for the customer-service environment: random, keyword rules, oracle.

Each is built as ``cls(env)``, gets ``reset(seed)`` after every ``env.reset`` and answers
``act(observation) -> action`` for the raw observation. Only :class:`OraclePolicy` reads the
hidden state.
"""

from __future__ import annotations

import re
from typing import Any

import gymnasium as gym
import numpy as np

__all__ = [
    "GROUP_KEYWORDS",
    "UPSET_WORDS",
    "HeuristicPolicy",
    "LabelledPolicy",
    "OraclePolicy",
    "RandomPolicy",
]

#: Keywords (regular expressions, matched on lower-cased text) that point to each group; a
#: support team's rule book written from the training phrasings (the core intents' first, then
#: the rest for the intents of ``corpus="full"``, chosen to leave the core's routing as it was).
GROUP_KEYWORDS: dict[str, tuple[str, ...]] = {
    "card_delivery": (r"arriv", r"deliver", r"\bpost\b", r"\bmail", r"activat", r"expir",
                      r"\border", r"\bget (a |the )?physical", r"physical one", r"plastic card",
                      r"real card", r"spare", r"second card", r"extra card", r"additional",
                      r"\blink"),
    "card_problems": (r"not working", r"stopped working", r"doesn't work", r"won't work",
                      r"contactless", r"\btap", r"swallow", r"stuck in", r"kept my card",
                      r"virtual", r"\bchip\b", r"broken", r"card (be |is )?accepted",
                      r"accept (your|this|my|the) card", r"take your card", r"disposable",
                      r"visa or (a )?mastercard", r"visa and mastercard", r"\bnetwork",
                      r"(to|with|in) (apple|google) pay", r"apple wallet"),
    "card_security": (r"\blost\b", r"stol", r"\bpin\b", r"can't find", r"passcode", r"missing",
                      r"thief", r"misplac", r"blocked", r"\bcode\b", r"compromis", r"skim",
                      r"hack", r"without my permission"),
    "card_payments": (r"payment", r"declined", r"pending", r"purchase", r"recogni",
                      r"didn't make", r"\bpay\b", r"\bshop", r"rejected", r"direct debit"),
    "cash_withdrawal": (r"\batm\b", r"\bcash\b", r"withdr", r"machine", r"\bnotes\b",
                        r"take out", r"took out"),
    "money_transfers": (r"transfer", r"recipient", r"\bsen[dt]", r"beneficiar", r"payee",
                        r"receiv\w* money", r"get paid"),
    "top_up": (r"top.?up", r"topped up", r"\badd(ed)? money", r"topping up", r"cheque",
               r"cash deposit", r"deposit(ed)? cash"),
    "currency_exchange": (r"exchang", r"currenc", r"conver", r"\brates?\b", r"foreign",
                          r"amex", r"american express", r"card types"),
    "identity_verification": (r"verif", r"identity", r"source of", r"passport", r"\bid\b",
                              r"document", r"prove"),
    "account_admin": (r"address", r"personal details", r"\bname\b", r"close my account",
                      r"delete my account", r"countr", r"open an account", r"\bage\b",
                      r"\bchild\b", r"profile", r"sign up", r"\bjoin\b"),
    "refunds_charges": (r"refund", r"money back", r"twice", r"duplicate", r"double",
                        r"extra (charge|fee)", r"statement", r"unexpected charge"),
}

#: Wording that signals an upset customer.
UPSET_WORDS: tuple[str, ...] = (
    "ridiculous", "furious", "unbelievable", "fed up", "second time", "not again", "honestly",
    "sort it out", "fixed today", "fix it", "worst", "answers", "!",
)


def _segments(observation: Any) -> tuple[str, ...]:
    return tuple(observation["dialogue"])


class RandomPolicy:
    """Uniformly random among the actions ``env.action_masks()`` allows."""

    def __init__(self, env: gym.Env) -> None:
        self.env = env
        self._rng = np.random.default_rng()

    def reset(self, seed: int | None = None) -> None:
        """Reseed the policy's own generator."""
        self._rng = np.random.default_rng(seed)

    def act(self, observation: Any) -> int:
        """A random allowed action."""
        mask = self.env.unwrapped.action_masks()
        allowed = np.flatnonzero(mask)
        return int(allowed[int(self._rng.random() * len(allowed))])

    def action_probabilities(self, observation: Any) -> np.ndarray:
        """Its distribution over every action: uniform over the allowed ones, ``[n_actions]``."""
        mask = np.asarray(self.env.unwrapped.action_masks(), dtype=np.float64)
        return mask / mask.sum()


class HeuristicPolicy:
    """Keyword rules reading the customer's text, like a support team's rule book.

    Each turn it reads the newest customer segment and: apologises when the wording sounds
    upset (at most twice in a row); otherwise resolves the untried group whose keywords
    matched most often over the conversation; otherwise asks to clarify (at most twice);
    otherwise escalates.
    """

    def __init__(self, env: gym.Env, *, max_clarify: int = 2, max_apologies: int = 2) -> None:
        self.env = env
        base = env.unwrapped
        self.max_clarify = max_clarify
        self.max_apologies = max_apologies
        self._n_groups = len(base.groups)
        self._patterns = [
            re.compile("|".join(GROUP_KEYWORDS.get(g, ())) or r"(?!x)x") for g in base.groups
        ]
        self._upset = re.compile("|".join(re.escape(w) for w in UPSET_WORDS))
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        """Forget the previous conversation."""
        self._scores = np.zeros(self._n_groups)
        self._tried: set[int] = set()
        self._clarify = 0
        self._apologies_in_row = 0

    def act(self, observation: Any) -> int:
        """The rule-book action for the newest customer turn."""
        text = _segments(observation)[-1].lower()
        if text.startswith("customer: "):
            text = text[len("customer: ") :]
        for g, pattern in enumerate(self._patterns):
            self._scores[g] += len(pattern.findall(text))
        if self._upset.search(text) and self._apologies_in_row < self.max_apologies:
            self._apologies_in_row += 1
            return self._n_groups + 1
        self._apologies_in_row = 0
        best, best_score = -1, 0.0
        for g in range(self._n_groups):
            if g not in self._tried and self._scores[g] > best_score:
                best, best_score = g, self._scores[g]
        if best >= 0:
            self._tried.add(best)
            return best
        if self._clarify < self.max_clarify:
            self._clarify += 1
            return self._n_groups
        return self._n_groups + 2


class OraclePolicy:
    """Knows the intent, mood and patience: calms the customer as far as it pays, then resolves.

    It chooses the number of apologies ``k`` (at most the mood level, and few enough that
    the customer stays) maximising ``success * mood_scale[mood - k] + (k + 1) * turn``.
    """

    def __init__(self, env: gym.Env) -> None:
        self.env = env

    def reset(self, seed: int | None = None) -> None:
        """Nothing to forget."""

    def act(self, observation: Any) -> int:
        """Apologise if that raises the final reward, else resolve the true group."""
        base = self.env.unwrapped
        state = base.get_state()
        rc = base.reward_config
        group = base.bank.intent_group[base.bank.intent_index[state.intent]]
        best_k, best_value = 0, -np.inf
        for k in range(state.mood + 1):
            if state.turn + k >= state.patience:
                break
            value = rc.success * rc.mood_scale[state.mood - k] + (k + 1) * rc.turn
            if value > best_value:
                best_k, best_value = k, value
        return base.APOLOGISE if best_k > 0 else group


class LabelledPolicy(OraclePolicy):
    """Acts on the labels of what it has read: the expert that labelled text can teach.

    It knows the intent and mood behind each request it has heard (what an annotator writes
    down), but not what a vague opening leaves open: until the customer has stated a specific
    request it asks them to clarify, then it acts as :class:`OraclePolicy` does (apologise as
    far as it pays, then resolve the labelled group). This is the default expert of the warm
    start (``rlagent train --warm-start``): a policy that clones it learns to resolve what the
    text says and to ask when the text does not say.
    """

    def act(self, observation: Any) -> int:
        """Ask while no specific request was heard, else the oracle's action."""
        base = self.env.unwrapped
        # ``_specified``: the opening was specific, or the customer has answered a question.
        return super().act(observation) if base._specified else base.ASK_CLARIFY

