# nbgrader reads this file; the course's configuration lives in jupyter_config.py.
c = get_config()  # noqa: F821
load_subconfig("jupyter_config.py")  # noqa: F821
