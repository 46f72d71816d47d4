"""placeholder"""
def run_sweep(*a, **k):
    raise NotImplementedError
