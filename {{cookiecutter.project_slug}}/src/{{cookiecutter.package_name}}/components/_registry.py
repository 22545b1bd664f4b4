"""The one package name under which every custom object is registered with Keras.

Custom objects are saved as ``"<PACKAGE>>ClassName"`` in ``.keras`` files, and a
fresh process finds them again once the module defining them is imported. It is this
project's own import name, so two projects from the same template, installed side by side,
never overwrite each other's registrations (Keras keeps one global table).

>>> PACKAGE
'{{ cookiecutter.package_name }}'
"""

PACKAGE = "{{ cookiecutter.package_name }}"
