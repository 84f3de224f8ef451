"""Drop-ins for other toolkits' Python APIs, on prefalign's own trainer: ``prefalign.compat.trl``
(TRL's ``DPOConfig``/``DPOTrainer``/``KTOConfig``/``KTOTrainer``)."""
