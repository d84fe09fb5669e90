"""The runner: plans a sweep of (task, objective, seed) runs, trains and evaluates each under one budget."""
