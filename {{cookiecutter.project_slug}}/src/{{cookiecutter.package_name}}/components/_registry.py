"""The one package name under which every custom object is registered with Keras.

Custom objects are saved as ``"<PACKAGE>>ClassName"`` in ``.keras`` files, and a
fresh process finds them again once the module defining them is imported.

>>> PACKAGE
'custom_tf'
"""

PACKAGE = "custom_tf"
