"""Monte-Carlo tree search for rlagent: search core, models, evaluators, beliefs and agents."""

from rlagent.planning.agent import MCTSAgent, make_planning_agent
from rlagent.planning.belief import BeliefModel, ParticleBelief, hide, observable_key
from rlagent.planning.config import (
    BELIEFS,
    MCTSConfig,
    bundled_planner_settings,
    read_planner_settings,
)
from rlagent.planning.env_model import EnvModel, action_table
from rlagent.planning.evaluators import ConstantEvaluator, RandomRolloutEvaluator
from rlagent.planning.learned_belief import (
    LearnedBelief,
    check_same_actions,
    probe_predictor,
    resolve_belief,
    training_env,
)
from rlagent.planning.mdp import (
    ExactValueEvaluator,
    TabularMDP,
    branching_mdp,
    lucky_outcome_mdp,
    random_mdp,
)
from rlagent.planning.model import (
    BatchEvaluator,
    BeliefUnavailableError,
    Evaluator,
    Model,
    ModelEnvActionsError,
    PlanningConfigError,
    PlanningError,
    PlanningStateError,
)
from rlagent.planning.policy_evaluator import PolicyEvaluator
from rlagent.planning.search import MCTS, SearchResult

__all__ = [
    "BELIEFS",
    "MCTS",
    "BatchEvaluator",
    "BeliefModel",
    "BeliefUnavailableError",
    "ConstantEvaluator",
    "EnvModel",
    "Evaluator",
    "ExactValueEvaluator",
    "LearnedBelief",
    "MCTSAgent",
    "MCTSConfig",
    "Model",
    "ModelEnvActionsError",
    "ParticleBelief",
    "PlanningConfigError",
    "PlanningError",
    "PlanningStateError",
    "PolicyEvaluator",
    "RandomRolloutEvaluator",
    "SearchResult",
    "TabularMDP",
    "action_table",
    "branching_mdp",
    "bundled_planner_settings",
    "check_same_actions",
    "hide",
    "lucky_outcome_mdp",
    "make_planning_agent",
    "observable_key",
    "probe_predictor",
    "random_mdp",
    "read_planner_settings",
    "resolve_belief",
    "training_env",
]
