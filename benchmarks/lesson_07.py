"""The lesson's own script, phases 1-5 as written, with plt.show() replaced by saving to files.

Used by bench_run.py as the baseline. Run: python benchmarks/lesson_07.py OUTDIR
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from sklearn.datasets import load_digits  # noqa: E402
import numpy as np  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
out.mkdir(parents=True, exist_ok=True)

# Phase 1: Load and explore
digits = load_digits()
X, y = digits.data, digits.target
print(f"Dataset shape: {X.shape}")
print(f"Labels shape: {y.shape}")
print(f"Classes: {np.unique(y)}")
fig, axes = plt.subplots(2, 5, figsize=(10, 4))
for i, ax in enumerate(axes.flat):
    ax.imshow(X[i].reshape(8, 8), cmap="gray")
    ax.set_title(f"Label: {y[i]}")
    ax.axis("off")
plt.savefig(out / "samples.png")
plt.close()


# Phase 2: Preprocess
def preprocess_data(X_train, X_test):
    """Normalize pixel values to [0, 1]."""
    X_train_norm = X_train / 16.0
    X_test_norm = X_test / 16.0
    return X_train_norm, X_test_norm


from sklearn.model_selection import train_test_split  # noqa: E402

X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=42)
X_train_norm, X_test_norm = preprocess_data(X_train, X_test)
print(f"Training samples: {len(X_train)}")
print(f"Test samples: {len(X_test)}")

# Phase 3: Train
from sklearn.linear_model import LogisticRegression  # noqa: E402


def train_model(X_train, y_train):
    """Train logistic regression classifier."""
    model = LogisticRegression(max_iter=1000, random_state=42)
    model.fit(X_train, y_train)
    return model


model = train_model(X_train_norm, y_train)
print("✓ Model trained!")


# Phase 4: Evaluate
def evaluate_model(model, X_test, y_test):
    """Calculate accuracy and confusion matrix."""
    from sklearn.metrics import accuracy_score, confusion_matrix

    y_pred = model.predict(X_test)
    accuracy = accuracy_score(y_test, y_pred)
    cm = confusion_matrix(y_test, y_pred)
    return accuracy, cm, y_pred


accuracy, cm, y_pred = evaluate_model(model, X_test_norm, y_test)
print(f"Test Accuracy: {accuracy:.2%}")

# Phase 5: Visualize
import seaborn as sns  # noqa: E402

plt.figure(figsize=(8, 6))
sns.heatmap(cm, annot=True, fmt="d", cmap="Blues")
plt.xlabel("Predicted")
plt.ylabel("True")
plt.title("Confusion Matrix")
plt.savefig(out / "confusion.png")
plt.close()

misclassified = np.where(y_test != y_pred)[0]
fig, axes = plt.subplots(2, 5, figsize=(12, 5))
for i, ax in enumerate(axes.flat):
    if i < len(misclassified):
        idx = misclassified[i]
        ax.imshow(X_test[idx].reshape(8, 8), cmap="gray")
        ax.set_title(f"True: {y_test[idx]}, Pred: {y_pred[idx]}")
        ax.axis("off")
plt.savefig(out / "misclassified.png")
plt.close()
