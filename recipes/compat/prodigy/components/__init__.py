"""`prodigy.components`: loaders, streams, preprocessors, sorters and the database."""
