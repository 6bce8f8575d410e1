from loopline.cli import entry_point

entry_point()
