"""``spoc-pretrain``: pretraining the policy's frame encoder on the simulator's labels."""
