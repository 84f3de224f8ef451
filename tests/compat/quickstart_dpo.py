# TRL's DPO quickstart (docs: "Quick start"), with a local model and data set; logging every
# step, two steps, and use_cpu (TRL refuses its default bf16 on a machine without a GPU otherwise).
import os

from datasets import load_dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import DPOConfig, DPOTrainer

model = AutoModelForCausalLM.from_pretrained(os.environ["QUICKSTART_MODEL"])
tokenizer = AutoTokenizer.from_pretrained(os.environ["QUICKSTART_MODEL"])
train_dataset = load_dataset("json", data_files=os.environ["QUICKSTART_DATA"], split="train")

training_args = DPOConfig(output_dir=os.environ["QUICKSTART_OUT"], logging_steps=1, max_steps=2, use_cpu=True)
trainer = DPOTrainer(model=model, args=training_args, processing_class=tokenizer, train_dataset=train_dataset)
trainer.train()
