import os
import sys

# tests import their naive twins as `import reference`
sys.path.insert(0, os.path.dirname(__file__))
