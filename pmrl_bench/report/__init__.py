"""What pmrl-bench tells the person at the terminal: result tables and the parameters of components."""
