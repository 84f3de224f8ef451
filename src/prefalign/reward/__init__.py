"""Bradley-Terry reward models: train, evaluate and score.

    train_reward_model("base", "pairs.jsonl", "rm")         # scalar head on a causal LM
    evaluate_reward_model("rm", "test.jsonl")["accuracy"]
    RewardModel.from_pretrained("rm").score(["text one", "text two"])
"""

from .loss import bradley_terry_loss
from .model import RewardModel, load_reward_model, rewards_of, score
from .train import evaluate_reward_model, train_reward_model

__all__ = ["bradley_terry_loss", "RewardModel", "load_reward_model", "rewards_of", "score",
           "train_reward_model", "evaluate_reward_model"]
