"""`prodigy.models`: the models a recipe can put in the loop."""
