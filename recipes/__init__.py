"""Recipes: the recipe API (`recipes.api`), the runner that serves a recipe's stream
(`recipes.runner`), the built-in recipes, loaders, spaCy glue, settings and the Prodigy
compatibility layer (`recipes.compat`)."""
